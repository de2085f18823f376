# PII field removal on tool results: before a tools/call result goes back to the client,
# remove fields that hold personal data (unless the client has the "pii:read" scope) and
# mask e-mail addresses and card numbers that appear inside free text.
#
# input:
#   client: {"scopes": ["tools:call"]}
#   result: {"structuredContent": {...}, "content": [{"type": "text", "text": "..."}]}
package mcp.pii_redaction

import rego.v1

pii_fields := {"email", "phone", "ssn", "date_of_birth", "home_address"}

can_read_pii if "pii:read" in input.client.scopes

email_pattern := `[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`

card_pattern := `\b(?:\d[ -]?){13,16}\b`

# Paths ("a/b/c") of PII fields anywhere in the structured content, including inside arrays.
pii_paths contains path if {
	some p, v in walk_paths
	v.key in pii_fields
	path := p
}

# Two levels of nesting are enough for this example: top-level records and lists of records.
walk_paths[path] := {"key": k} if {
	some k, _ in input.result.structuredContent
	path := k
}

walk_paths[path] := {"key": k} if {
	some parent, child in input.result.structuredContent
	is_object(child)
	some k, _ in child
	path := concat("/", [parent, k])
}

walk_paths[path] := {"key": k} if {
	some parent, list in input.result.structuredContent
	is_array(list)
	some i, item in list
	is_object(item)
	some k, _ in item
	path := concat("/", [parent, format_int(i, 10), k])
}

mask(text) := regex.replace(regex.replace(text, email_pattern, "[email]"), card_pattern, "[card]")

redacted_structured := input.result.structuredContent if can_read_pii

else := json.remove(input.result.structuredContent, pii_paths)

redacted_content := [item |
	some c in input.result.content
	item := mask_item(c)
]

mask_item(c) := c if can_read_pii

else := object.union(c, {"text": mask(c.text)}) if c.type == "text"

else := c

# object.union merges recursively, so drop the original fields before putting the redacted ones in.
result := object.union(
	object.remove(input.result, {"structuredContent", "content"}),
	{"structuredContent": redacted_structured, "content": redacted_content},
)

removed_fields := set() if can_read_pii

else := pii_paths
