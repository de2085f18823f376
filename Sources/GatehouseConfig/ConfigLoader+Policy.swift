import Foundation
import Yams

/// `spec.policy`.
extension DocumentReader {
    mutating func readPolicy(_ node: Node) -> PolicyConfig? {
        guard var fields = Fields(node, path: "spec.policy", reader: &self) else { return nil }
        var policy = PolicyConfig()
        let base = URL(fileURLWithPath: file).deletingLastPathComponent()
        if let regoNode = fields.take("rego"), var rego = Fields(regoNode, path: "spec.policy.rego", reader: &self) {
            if let paths = rego.stringList("paths", reader: &self) {
                for path in paths {
                    let resolved = path.hasPrefix("/") ? path : base.appendingPathComponent(path).standardized.path
                    if !FileManager.default.fileExists(atPath: resolved) {
                        report(regoNode, "policy path '\(path)' does not exist (resolved to \(resolved))", hint: "paths are relative to the config file")
                    }
                    policy.regoPaths.append(resolved)
                }
                if paths.isEmpty { report(regoNode, "spec.policy.rego.paths is empty", hint: "list .rego files or directories") }
            }
            if let inline = rego.string("inline", reader: &self) { policy.inlineModule = inline.value }
            if policy.regoPaths.isEmpty, policy.inlineModule == nil {
                report(regoNode, "spec.policy.rego needs paths or inline", hint: "list .rego files or directories (with .json/.yaml data), or write the module under inline: |")
            }
            if let query = rego.string("query", reader: &self) {
                if query.value.hasPrefix("data.") { policy.query = query.value } else {
                    report(query.node, "spec.policy.rego.query must be a rule under data, e.g. data.gatehouse.decision")
                }
            }
            rego.finish(reader: &self)
        }
        if let denied = fields.string("deniedTools", reader: &self) {
            if let mode = PolicyConfig.DeniedTools(rawValue: denied.value) { policy.deniedTools = mode } else {
                report(denied.node, "unknown deniedTools '\(denied.value)'", hint: "use hide (answer like an unknown tool) or error")
            }
        }
        if let auditNode = fields.take("audit"), var audit = Fields(auditNode, path: "spec.policy.audit", reader: &self) {
            let sink = audit.string("sink", reader: &self)
            let path = audit.string("path", reader: &self)
            switch sink?.value {
            case nil, "stdout": policy.audit.sink = .stdout
            case "off": policy.audit.sink = .off
            case "file":
                if let path {
                    let resolved = path.value.hasPrefix("/") ? path.value : base.appendingPathComponent(path.value).standardized.path
                    policy.audit.sink = .file(resolved)
                } else {
                    report(auditNode, "spec.policy.audit.sink file needs a path")
                }
            case let other?:
                report(sink?.node, "unknown audit sink '\(other)'", hint: "use stdout, file (with path) or off")
            }
            if let mask = audit.stringList("maskArguments", reader: &self) { policy.audit.maskArguments = mask }
            audit.finish(reader: &self)
        }
        if let pipelineNode = fields.take("pipeline") { policy.pipeline = readPipeline(pipelineNode) }
        fields.finish(reader: &self)
        if policy.regoPaths.isEmpty, policy.inlineModule == nil, policy.pipeline == nil {
            report(node, "spec.policy has neither rego nor pipeline", hint: "add rego: {paths: [...]} or pipeline: {matchers, expression}")
        }
        return policy
    }

    mutating func readPipeline(_ node: Node) -> PolicyConfig.Pipeline? {
        guard var fields = Fields(node, path: "spec.policy.pipeline", reader: &self) else { return nil }
        defer { fields.finish(reader: &self) }
        var proxies: [CIDR] = []
        if let list = fields.stringList("trustedProxies", reader: &self) {
            for text in list {
                if let cidr = CIDR(text) { proxies.append(cidr) } else { report(node, "invalid CIDR '\(text)' in trustedProxies", hint: "e.g. 10.0.0.0/8 or 127.0.0.1") }
            }
        }
        var matchers: [PolicyConfig.Matcher] = []
        if let matchersNode = fields.take("matchers") {
            if case .sequence(let items) = matchersNode {
                for item in items {
                    if let matcher = readMatcher(item) {
                        if matchers.contains(where: { $0.name == matcher.name }) { report(item, "matcher '\(matcher.name)' is defined twice") }
                        matchers.append(matcher)
                    }
                }
            } else {
                report(matchersNode, "spec.policy.pipeline.matchers must be a list")
            }
        }
        guard let expressionValue = fields.string("expression", required: true, reader: &self) else { return nil }
        let expression: PipelineExpression
        do {
            expression = try PipelineExpression.parse(expressionValue.value)
        } catch {
            report(expressionValue.node, "invalid pipeline expression: \(error.message) at character \(error.offset + 1)",
                   hint: "use matcher names with &&, ||, ! and parentheses, e.g. (ip-allowlist || partner) && !blocked")
            return nil
        }
        let known = Set(matchers.map(\.name))
        for name in Set(expression.names) where !known.contains(name) {
            report(expressionValue.node, "the pipeline expression names '\(name)', which is not a matcher",
                   hint: known.isEmpty ? "define it under matchers" : "matchers: \(known.sorted().joined(separator: ", "))")
        }
        var pipeline = PolicyConfig.Pipeline(expression: expression, text: expressionValue.value)
        pipeline.trustedProxies = proxies
        pipeline.matchers = matchers
        return pipeline
    }

    mutating func readMatcher(_ node: Node) -> PolicyConfig.Matcher? {
        guard var fields = Fields(node, path: "spec.policy.pipeline.matchers[]", reader: &self) else { return nil }
        defer { fields.finish(reader: &self) }
        guard let name = fields.string("name", required: true, reader: &self) else { return nil }
        if name.value.isEmpty || !name.value.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) {
            report(name.node, "matcher names use letters, digits, - and _")
        }
        var kinds: [PolicyConfig.Matcher.Kind] = []
        if let cidrs = fields.stringList("clientIP", reader: &self) {
            var parsed: [CIDR] = []
            for text in cidrs {
                if let cidr = CIDR(text) { parsed.append(cidr) } else { report(node, "invalid CIDR '\(text)' in matcher '\(name.value)'", hint: "e.g. 10.0.0.0/8, 2001:db8::/32, 192.0.2.7") }
            }
            kinds.append(.clientIP(parsed))
        }
        if let headerNode = fields.take("header"), var header = Fields(headerNode, path: "matchers[].header", reader: &self) {
            let headerName = header.string("name", required: true, reader: &self)
            let values = header.stringList("values", reader: &self) ?? ["*"]
            header.finish(reader: &self)
            if let headerName { kinds.append(.header(name: headerName.value.lowercased(), values: values)) }
        }
        if let claimNode = fields.take("claim"), var claim = Fields(claimNode, path: "matchers[].claim", reader: &self) {
            let claimName = claim.string("name", required: true, reader: &self)
            let values = claim.stringList("values", reader: &self) ?? []
            claim.finish(reader: &self)
            if let claimName { kinds.append(.claim(name: claimName.value, values: values)) }
        }
        if let agents = fields.stringList("userAgent", reader: &self) { kinds.append(.userAgent(agents)) }
        guard kinds.count == 1 else {
            report(node, kinds.isEmpty ? "matcher '\(name.value)' needs one of clientIP, header, claim, userAgent"
                                       : "matcher '\(name.value)' has more than one of clientIP, header, claim, userAgent",
                   hint: "combine matchers in the expression instead")
            return nil
        }
        return PolicyConfig.Matcher(name: name.value, kind: kinds[0])
    }
}

/// `spec.rateLimits`.
extension DocumentReader {
    mutating func readRateLimits(_ node: Node) -> [GatewayConfig.RateLimit] {
        guard case .sequence(let items) = node else {
            report(node, "spec.rateLimits must be a list of {name, key, requestsPerSecond, burst}")
            return []
        }
        var result: [GatewayConfig.RateLimit] = []
        for item in items {
            guard var fields = Fields(item, path: "spec.rateLimits[]", reader: &self) else { continue }
            defer { fields.finish(reader: &self) }
            let name = fields.string("name", required: true, reader: &self)
            let rate = fields.double("requestsPerSecond", range: 0.000001...1_000_000, reader: &self)
            let burst = fields.int("burst", range: 1...1_000_000, reader: &self)
            if rate == nil { report(item, "missing required key 'requestsPerSecond' in spec.rateLimits[]", hint: "e.g. requestsPerSecond: 5 (0.5 is one every two seconds)") }
            guard let name, let rate else { continue }
            if result.contains(where: { $0.name == name.value }) { report(name.node, "rate limit '\(name.value)' is defined twice") }
            var limit = GatewayConfig.RateLimit(name: name.value, requestsPerSecond: rate, burst: burst ?? max(1, Int(rate.rounded(.up))))
            if let key = fields.stringList("key", reader: &self) {
                var dimensions: [GatewayConfig.RateLimit.Dimension] = []
                for part in key {
                    if let d = GatewayConfig.RateLimit.Dimension(rawValue: part) { dimensions.append(d) } else {
                        report(item, "unknown rate limit key '\(part)'", hint: "use any of: identity, client, server, tool")
                    }
                }
                limit.key = dimensions
            }
            if let methods = fields.stringList("methods", reader: &self) { limit.methods = methods }
            if let servers = fields.stringList("servers", reader: &self) { limit.servers = servers }
            if let tools = fields.stringList("tools", reader: &self) { limit.tools = tools }
            if let shared = fields.bool("shared", reader: &self) { limit.shared = shared }
            if let lease = fields.int("leaseTokens", range: 1...10_000, reader: &self) {
                limit.leaseTokens = lease
                if lease > limit.burst { report(item, "spec.rateLimits[].leaseTokens (\(lease)) is larger than burst (\(limit.burst))", hint: "a lease is a part of the bucket; use at most burst") }
            }
            result.append(limit)
        }
        return result
    }
}
