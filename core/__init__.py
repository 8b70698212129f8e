"""What every layer shares: roles and the access table, the audit trail, concepts, errors. Imports
nothing of ours."""
