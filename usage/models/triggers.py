import pgtrigger

# Rows of the ledger and of usage are never updated or deleted: PostgreSQL refuses it.
APPEND_ONLY = pgtrigger.Protect(name="append_only", operation=pgtrigger.Update | pgtrigger.Delete)
