# Client-to-server authorization: which MCP client may call which upstream server and method.
#
# input:
#   client:  {"id": "cursor-alice", "subject": "alice", "roles": ["developer"], "authenticated": true}
#   server:  "github"            (the upstream MCP server the request is routed to)
#   method:  "tools/call"        (JSON-RPC method)
package mcp.client_authz

import rego.v1

roles := data.client_authz.roles

default allow := false

# Notifications and pings are always allowed once the client is authenticated.
allow if {
	input.client.authenticated
	not blocked
	input.method in {"ping", "notifications/initialized", "notifications/cancelled"}
}

allow if {
	input.client.authenticated
	not blocked
	some role in input.client.roles
	grants_server(roles[role], input.server)
	grants_method(roles[role], input.method)
}

blocked if input.client.id in data.client_authz.blocked_clients

grants_server(grant, _) if "*" in grant.servers

grants_server(grant, server) if server in grant.servers

grants_method(grant, _) if "*" in grant.methods

grants_method(grant, method) if method in grant.methods

# Human-readable reasons for the audit log.
reasons contains "client is not authenticated" if not input.client.authenticated

reasons contains sprintf("client %q is blocked", [input.client.id]) if blocked

reasons contains sprintf("no role of %v grants %s on server %q", [sort(input.client.roles), input.method, input.server]) if {
	input.client.authenticated
	not blocked
	not allow
}

decision := {"allow": allow, "reasons": reasons}
