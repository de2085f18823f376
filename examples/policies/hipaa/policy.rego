# HIPAA-style compliance check for MCP tool calls that touch protected health information (PHI).
#
# A call to a PHI-bearing tool is compliant only when:
#   - the upstream server is covered by a signed business associate agreement (BAA),
#   - the caller has completed HIPAA training within the last 365 days,
#   - a permitted purpose of use is declared (treatment, payment, operations),
#   - the request asks only for the minimum necessary fields for that purpose, and
#   - the transport is encrypted.
# Break-glass access (emergency) is allowed without a purpose restriction but is flagged for review.
#
# input:
#   subject: {"sub": "dr-who", "roles": ["clinician"], "hipaa_training_ns": 1717000000000000000}
#   server: "ehr"
#   tool: {"name": "get_patient_record", "arguments": {"patient_id": "p1", "fields": ["allergies"]}}
#   context: {"purpose_of_use": "treatment", "tls": true, "break_glass": false}
package mcp.hipaa

import rego.v1

phi_servers := {"ehr", "billing", "lab"}

baa_signed := {"ehr", "lab"}

permitted_purposes := {"treatment", "payment", "operations"}

minimum_necessary := {
	"treatment": {"allergies", "medications", "problems", "vitals", "notes"},
	"payment": {"insurance", "billing_codes"},
	"operations": {"billing_codes", "visit_dates"},
}

year_ns := ((365 * 24) * 3600) * 1000000000

touches_phi if input.server in phi_servers

break_glass if input.context.break_glass == true

requested_fields := {f | some f in input.tool.arguments.fields}

violations contains "server has no signed business associate agreement" if {
	touches_phi
	not input.server in baa_signed
}

violations contains "transport is not encrypted" if {
	touches_phi
	not input.context.tls
}

violations contains "HIPAA training missing or expired" if {
	touches_phi
	not training_current
}

violations contains "no permitted purpose of use declared" if {
	touches_phi
	not break_glass
	not input.context.purpose_of_use in permitted_purposes
}

violations contains msg if {
	touches_phi
	not break_glass
	allowed := minimum_necessary[input.context.purpose_of_use]
	extra := requested_fields - allowed
	count(extra) > 0
	msg := sprintf("fields %v exceed the minimum necessary for %s", [sort(extra), input.context.purpose_of_use])
}

training_current if {
	trained := input.subject.hipaa_training_ns
	time.now_ns() - trained < year_ns
}

default compliant := false

compliant if count(violations) == 0

default review_required := false

review_required if {
	touches_phi
	break_glass
}

decision := {
	"allow": compliant,
	"violations": violations,
	"review_required": review_required,
} if touches_phi

else := {"allow": true, "violations": set(), "review_required": false}
