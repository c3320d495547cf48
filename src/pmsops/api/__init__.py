"""The backend's HTTP API as the operator sees it: token, connections, sync trigger, sync logs, smoke."""
