import GatehouseConfig
import MCPWire

/// How an endpoint shows its servers' tools (docs/federation.md "Virtual servers"): renamed,
/// re-described, with annotations replaced, hidden, or — with `toolSelection: listed` — only
/// the tools the operator chose, under the names the operator gave them.
///
/// Design note: the view is applied last, to what clients see. Pins, policy and routing work
/// on the server's own tool names and definitions, so a rename never lets a tool dodge a pin
/// or a policy rule written for its real name; and a renamed or hidden tool is unknown under
/// its own name, so hiding cannot be bypassed by calling the original.
struct ToolView: Sendable {
    struct Owner: Hashable, Sendable {
        var server: Int
        var tool: String
    }

    let overrides: [Owner: GatewayConfig.ToolOverride]
    /// Names the operator gave → the tool they stand for.
    let byName: [String: (server: Int, name: String)]
    let onlyListed: Bool

    init(overrides list: [GatewayConfig.ToolOverride], servers: [String], onlyListed: Bool) {
        var overrides: [Owner: GatewayConfig.ToolOverride] = [:]
        var byName: [String: (server: Int, name: String)] = [:]
        for override in list {
            guard let index = servers.firstIndex(of: override.server) else { continue }
            overrides[Owner(server: index, tool: override.tool)] = override
            if let name = override.name, !override.hide { byName[name] = (index, override.tool) }
        }
        self.overrides = overrides
        self.byName = byName
        self.onlyListed = onlyListed
    }

    var isEmpty: Bool { overrides.isEmpty && !onlyListed }

    /// True when the tool cannot be reached under its own (or prefixed) name here.
    func hides(server: Int, tool: String) -> Bool {
        guard let override = overrides[Owner(server: server, tool: tool)] else { return onlyListed }
        return override.hide || override.name != nil
    }

    /// The tool as clients see it; nil when hidden or not selected. `name` in the result is the
    /// operator's name when one is given, else the server's (the caller applies the naming).
    func show(_ tool: JSONObject, server: Int) -> (tool: JSONObject, renamed: Bool)? {
        guard let name = tool["name"]?.stringValue else { return nil }
        guard let override = overrides[Owner(server: server, tool: name)] else { return onlyListed ? nil : (tool, false) }
        if override.hide { return nil }
        var shown = tool
        if let rename = override.name { shown["name"] = .string(rename) }
        if let title = override.title { shown["title"] = .string(title) }
        if let description = override.description { shown["description"] = .string(description) }
        if !override.annotations.isEmpty {
            var annotations = shown["annotations"]?.objectValue ?? [:]
            for (key, value) in override.annotations {
                switch value {
                case .bool(let flag): annotations[key] = .bool(flag)
                case .string(let text): annotations[key] = .string(text)
                case .null: annotations[key] = nil
                }
            }
            shown["annotations"] = .object(annotations)
        }
        return (shown, override.name != nil)
    }
}
