"""A third-party lab connector, as another package would ship one."""

from portal.integrations.base import Field, LabConnector


class AcmeLabConnector(LabConnector):
    name = "acme-lab"
    title = "Acme Reference Laboratory"
    description = "Orders and results with Acme (a plugin installed by the tests)."
    fields = (Field("account", "Account number"), Field("api_key", "API key", type="secret"))

    def check(self) -> None:
        """Nothing to reach: any settings will do."""

    def deliver(self, operation: str, payload: dict, idempotency_key: str) -> dict:
        return {"accepted": idempotency_key}
