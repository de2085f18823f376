package mcp.adaptive_limits_test

import data.mcp.adaptive_limits
import rego.v1

req(tier, trusted, server, tool, signals) := {
	"client": {"id": "c1", "tier": tier, "trusted": trusted},
	"tool": {"server": server, "name": tool},
	"signals": signals,
}

clean := {"error_rate": 0, "abuse_reports": 0}

test_pro_untrusted if {
	adaptive_limits.limit == {"per_minute": 300, "burst": 50} with input as req("pro", false, "github", "search", clean)
}

test_trusted_enterprise_doubles if {
	adaptive_limits.limit.per_minute == 6000 with input as req("enterprise", true, "github", "search", clean)
}

test_unknown_tier_is_free if {
	adaptive_limits.tier == "free" with input as req("platinum", false, "github", "search", clean)
	adaptive_limits.limit.per_minute == 20 with input as req("platinum", false, "github", "search", clean)
}

test_error_rate_halves if {
	adaptive_limits.limit.per_minute == 150 with input as req("pro", false, "github", "search", {"error_rate": 0.5, "abuse_reports": 0})
}

test_abuse_cuts_to_tenth_and_never_zero if {
	adaptive_limits.limit == {"per_minute": 2, "burst": 1} with input as req("free", false, "github", "search", {"error_rate": 0.9, "abuse_reports": 3})
}

test_expensive_tool_cost if {
	adaptive_limits.cost == 10 with input as req("pro", false, "warehouse", "run_query", clean)
	adaptive_limits.cost == 25 with input as req("pro", false, "design", "generate_image", clean)
	adaptive_limits.cost == 1 with input as req("pro", false, "github", "search", clean)
}

test_headers if {
	adaptive_limits.headers == {"x-ratelimit-limit": "600", "x-ratelimit-cost": "10"} with input as req("pro", true, "warehouse", "run_export", clean)
}
