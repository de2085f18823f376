# Adaptive rate limits by tier: each client tier gets a base budget of tool calls per minute;
# expensive tools cost more, trusted clients get a bonus, and clients with recent errors or
# abuse signals are throttled. The gateway enforces `limit` and `cost` per request.
#
# input:
#   client: {"id": "acme-agent", "tier": "pro", "trusted": true}
#   tool: {"server": "warehouse", "name": "run_query"}
#   signals: {"error_rate": 0.02, "abuse_reports": 0}
package mcp.adaptive_limits

import rego.v1

tiers := {
	"free": {"per_minute": 20, "burst": 5},
	"pro": {"per_minute": 300, "burst": 50},
	"enterprise": {"per_minute": 3000, "burst": 500},
}

# Cost multipliers for expensive tools, as glob patterns on "server/tool".
tool_costs := {
	"warehouse/run_*": 10,
	"*/generate_image": 25,
}

default tier := "free"

tier := input.client.tier if input.client.tier in object.keys(tiers)

base := tiers[tier]

trust_bonus := 2 if input.client.trusted == true

else := 1

# Halve the budget when the error rate is high, and cut it to a tenth on abuse reports.
penalty := 10 if input.signals.abuse_reports > 0

else := 2 if input.signals.error_rate > 0.25

else := 1

limit := {
	"per_minute": max([1, round((base.per_minute * trust_bonus) / penalty)]),
	"burst": max([1, round((base.burst * trust_bonus) / penalty)]),
}

default cost := 1

cost := max([c |
	some pattern, c in tool_costs
	glob.match(pattern, ["/"], sprintf("%s/%s", [input.tool.server, input.tool.name]))
])

headers := {
	"x-ratelimit-limit": format_int(limit.per_minute, 10),
	"x-ratelimit-cost": format_int(cost, 10),
}
