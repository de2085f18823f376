# The decision Gatehouse asks for on every MCP request (spec.policy.rego.query defaults to
# data.gatehouse.decision). See docs/policy.md for the input document.
#
# Writers (API keys or tokens with the scope tools:write) may call every tool. Everyone else
# may call read-only tools only (the tool's readOnlyHint annotation), and use prompts and
# resources. Emails, card numbers and `ssn` fields are redacted from every answer.
package gatehouse

import rego.v1

writer if "tools:write" in input.identity.scopes

read_only_tool if input.tool.annotations.readOnlyHint == true

allow if {
	input.request.method == "tools/call"
	writer
}

allow if {
	input.request.method == "tools/call"
	read_only_tool
}

allow if input.request.method in {
	"prompts/get", "resources/read", "resources/subscribe", "resources/unsubscribe",
	"completion/complete", "logging/setLevel",
}

reasons contains "writer: every tool" if writer

reasons contains "read-only tool" if read_only_tool

reasons contains sprintf("%s is open to every caller", [input.request.method]) if input.request.method != "tools/call"

default decision := {"allow": false, "reasons": ["only writers may call tools that are not read-only"]}

decision := {
	"allow": true,
	"reasons": reasons,
	"redact": {"detectors": ["email", "card"], "fields": ["ssn"]},
	"headers": {"response": {"X-Gatehouse-Policy": "gateway_authz"}},
} if allow
