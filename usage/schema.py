"""How drf-spectacular describes spending tokens in the OpenAPI schema: as a
second bearer scheme, listed only on the operations that take one."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class SpendingTokenScheme(OpenApiAuthenticationExtension):
    target_class = "usage.authentication.SpendingTokenAuthentication"
    name = "SpendingTokenAuth"

    def get_security_requirement(self, auto_schema):
        # Every view has the class (it refuses tokens with 403 token_not_allowed);
        # only the ones that record usage accept one.
        if getattr(auto_schema.view, "spending_tokens", False):
            return {self.name: []}
        return []

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A spending token for one hold (`Authorization: Bearer tgs_<prefix>.<secret>`), from "
                           "`POST /api/v1/holds/{id}/tokens`: it may only record usage events against that hold. "
                           "Any other call with it is 403 `token_not_allowed`.",
        }
