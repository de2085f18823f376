# Per-tool RBAC with an argument constraint.
#
# Each role lists the tools it may call (as "server/tool" globs). Filesystem tools are further
# restricted: the `path` argument must be under one of the role's allowed directory prefixes,
# after normalization; ".." segments are refused so they cannot escape the prefix.
#
# input:
#   subject: {"sub": "alice", "roles": ["engineer"]}
#   server: "filesystem"
#   tool: {"name": "read_file", "arguments": {"path": "/srv/projects/app/README.md"}}
package mcp.tool_rbac

import rego.v1

tool_grants := {
	"engineer": ["filesystem/read_file", "filesystem/list_directory", "github/*"],
	"writer": ["filesystem/read_file", "filesystem/write_file"],
	"support": ["jira/search_*", "jira/get_issue"],
}

path_prefixes := {
	"engineer": ["/srv/projects/"],
	"writer": ["/srv/docs/", "/srv/projects/handbook/"],
}

filesystem_tools := {"read_file", "write_file", "list_directory", "move_file"}

default allow := false

allow if {
	some role in input.subject.roles
	tool_allowed(role)
	arguments_allowed(role)
}

tool_allowed(role) if {
	some pattern in tool_grants[role]
	glob.match(pattern, ["/"], sprintf("%s/%s", [input.server, input.tool.name]))
}

# Tools that are not filesystem tools have no argument constraint here.
arguments_allowed(_) if not is_filesystem_call

arguments_allowed(role) if {
	is_filesystem_call
	path := normalized_path
	strings.any_prefix_match(path, path_prefixes[role])
}

is_filesystem_call if {
	input.server == "filesystem"
	input.tool.name in filesystem_tools
}

# Absolute path with empty and "." segments removed; undefined for relative paths and for any
# ".." segment (Rego has no recursion to resolve them, and a gateway should refuse them anyway).
normalized_path := p if {
	raw := input.tool.arguments.path
	startswith(raw, "/")
	segments := [s | some s in split(raw, "/"); s != ""; s != "."]
	not ".." in segments
	p := concat("/", array.concat([""], segments))
}

violations contains msg if {
	is_filesystem_call
	not normalized_path
	msg := sprintf("path %q must be absolute without .. segments", [input.tool.arguments.path])
}

violations contains msg if {
	not allow
	msg := sprintf("%s/%s is not allowed for roles %v", [input.server, input.tool.name, input.subject.roles])
}
