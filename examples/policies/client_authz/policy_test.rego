package mcp.client_authz_test

import data.mcp.client_authz
import rego.v1

alice := {"id": "cursor-alice", "subject": "alice", "roles": ["developer"], "authenticated": true}

test_developer_can_call_github_tools if {
	client_authz.allow with input as {"client": alice, "server": "github", "method": "tools/call"}
}

test_developer_cannot_reach_warehouse if {
	not client_authz.allow with input as {"client": alice, "server": "warehouse", "method": "tools/call"}
}

test_admin_wildcards if {
	client_authz.allow with input as {
		"client": {"id": "ops", "roles": ["admin"], "authenticated": true},
		"server": "anything", "method": "resources/subscribe",
	}
}

test_auditor_can_list_but_not_call if {
	auditor := {"id": "audit", "roles": ["auditor"], "authenticated": true}
	client_authz.allow with input as {"client": auditor, "server": "github", "method": "tools/list"}
	not client_authz.allow with input as {"client": auditor, "server": "github", "method": "tools/call"}
}

test_unauthenticated_denied_with_reason if {
	d := client_authz.decision with input as {"client": {"id": "x", "roles": ["admin"], "authenticated": false}, "server": "github", "method": "tools/call"}
	d.allow == false
	"client is not authenticated" in d.reasons
}

test_blocked_client_denied_even_for_ping if {
	d := client_authz.decision with input as {"client": {"id": "legacy-bot", "roles": ["admin"], "authenticated": true}, "server": "github", "method": "ping"}
	not d.allow
	d.reasons == {`client "legacy-bot" is blocked`}
}

test_ping_allowed_without_role if {
	client_authz.allow with input as {"client": {"id": "c", "roles": [], "authenticated": true}, "server": "github", "method": "ping"}
}

test_multiple_roles_union if {
	client_authz.allow with input as {
		"client": {"id": "c", "roles": ["analyst", "developer"], "authenticated": true},
		"server": "warehouse", "method": "tools/call",
	}
}

test_denial_reason_names_roles if {
	d := client_authz.decision with input as {"client": alice, "server": "warehouse", "method": "tools/call"}
	d.reasons == {`no role of ["developer"] grants tools/call on server "warehouse"`}
}

test_roles_from_data_can_be_replaced if {
	client_authz.allow with input as {"client": alice, "server": "warehouse", "method": "tools/call"}
		with data.client_authz.roles.developer as {"servers": ["warehouse"], "methods": ["tools/call"]}
}
