"""``flask worker`` for the tests' connector: registers ``EchoConnector`` (which no installed
package provides), then runs the real worker command, configured by the environment."""

from portal import create_app
from portal.integrations import registry
from tests.integrations.helpers import EchoConnector

if __name__ == "__main__":
    registry.register(EchoConnector)
    create_app().cli.main(args=["worker"], prog_name="flask")
