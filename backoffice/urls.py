"""Staff pages, under /admin/backoffice/ (staff only, in the admin's frame).

Each part of the back office keeps its own URL list, so the parts grow apart.
"""

from backoffice.customers import urls as customers_urls
from backoffice.figures import urls as figures_urls
from backoffice.reconciliation import urls as reconciliation_urls

app_name = "backoffice"

urlpatterns: list = [
    *figures_urls.urlpatterns,
    *customers_urls.urlpatterns,
    *reconciliation_urls.urlpatterns,
]
