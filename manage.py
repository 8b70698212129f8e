#!/usr/bin/env python
"""Django's command-line utility for CrowdDissect."""

import sys

from config.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv))
