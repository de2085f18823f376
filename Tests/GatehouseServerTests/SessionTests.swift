import GatehouseUpstream
import MCPWire
import Testing
@testable import GatehouseServer

@Suite("Session state")
struct SessionTests {
    func session(_ id: String = SessionID.generate()) -> DownstreamSession {
        DownstreamSession(id: id, version: .v2025_11_25, identity: .anonymous, client: .gateway,
                          channels: ChannelSet(servers: [], owner: ChannelOwner(identity: "t", downstreamSession: id), client: .gateway) { _, _ in })
    }

    @Test("messages wait for the GET stream, bounded, and arrive in order when it opens")
    func backlog() async {
        let s = session()
        for i in 0..<(DownstreamSession.maxBacklog + 10) {
            s.deliver(.notification(method: "n\(i)", params: nil))
        }
        let stream = s.openStream(keepAlive: .seconds(3600))
        var iterator = stream.makeAsyncIterator()
        let first = await iterator.next()
        // The oldest ten were dropped to respect the bound.
        #expect(first.map { String(decoding: $0, as: UTF8.self) }?.contains("\"n10\"") == true)
        s.closeStream()
    }

    @Test("a newer GET stream replaces the older one")
    func replace() async {
        let s = session()
        let old = s.openStream(keepAlive: .seconds(3600))
        let new = s.openStream(keepAlive: .seconds(3600))
        var oldIterator = old.makeAsyncIterator()
        #expect(await oldIterator.next() == nil)
        s.deliver(.notification(method: "x", params: nil))
        var newIterator = new.makeAsyncIterator()
        #expect(await newIterator.next() != nil)
        s.closeStream()
    }

    @Test("only sessions idle past the timeout, with no request or stream, expire")
    func idle() async throws {
        let store = SessionStore(maxSessions: 2)
        let busy = session("busy"), streaming = session("streaming"), idle = session("idle")
        #expect(store.insert(busy))
        #expect(store.insert(idle))
        #expect(!store.insert(streaming))  // over maxSessions
        busy.beginRequest()
        try await Task.sleep(for: .milliseconds(30))
        let expired = store.removeIdle(longerThan: .milliseconds(10))
        #expect(expired.map(\.id) == ["idle"])
        #expect(store.get("busy") != nil)
        #expect(store.get("idle") == nil)
        busy.endRequest()
    }

    @Test("ended sessions are remembered so their sealed ids cannot revive them here")
    func endedRemembered() {
        let store = SessionStore(maxSessions: 2)
        #expect(store.insert(session("one")))
        #expect(store.remove("one") != nil)
        #expect(store.wasEnded("one"))
        #expect(!store.wasEnded("two"))
        #expect(!store.insert(session("one")) || store.get("one") != nil)
        for i in 0..<5 {  // bounded by maxSessions
            #expect(store.insert(session("s\(i)")))
            _ = store.remove("s\(i)")
        }
        #expect(store.wasEnded("s4"))
    }

    @Test("one caller over maxPerCaller loses its longest idle session; busy sessions are never taken; other callers are unaffected")
    func perCallerLimit() async throws {
        let store = SessionStore(maxSessions: 10, maxPerCaller: 2)
        let first = session("first"), second = session("second"), third = session("third")
        #expect(store.insert(first, caller: "alice").evictedID == .some(nil))
        try await Task.sleep(for: .milliseconds(5))
        #expect(store.insert(second, caller: "alice").evictedID == .some(nil))
        second.touch()
        // "first" is the longest idle: it goes, "third" comes in.
        #expect(store.insert(third, caller: "alice").evictedID == .some("first"))
        #expect(store.get("first") == nil && store.wasEnded("first"))
        #expect(store.count(caller: "alice") == 2)
        // Bob is not affected by Alice's limit.
        #expect(store.insert(session("bob-1"), caller: "bob").evictedID == .some(nil))
        #expect(store.count(caller: "bob") == 1)
        // When every session of the caller is busy, the new one is refused instead.
        second.beginRequest()
        third.beginRequest()
        guard case .callerFull = store.insert(session("fourth"), caller: "alice") else {
            Issue.record("a caller whose sessions are all busy must be refused")
            return
        }
        second.endRequest()
        third.endRequest()
        // Removing a session frees its caller's slot.
        _ = store.remove("second")
        #expect(store.insert(session("fifth"), caller: "alice").evictedID == .some(nil))
    }

    @Test("server-to-client request ids are unique per session and route answers back")
    func outboundIDs() throws {
        let s = session()
        let a = s.mapOutbound(.request(id: 1, method: "roots/list", params: nil), server: 0)
        let b = s.mapOutbound(.request(id: 1, method: "roots/list", params: nil), server: 2)
        #expect(a.id != b.id)
        let answer = try #require(s.resolveInbound(.response(id: b.id!, result: [:])))
        #expect(answer.server == 2)
        #expect(answer.message.id == 1)
        #expect(s.resolveInbound(.response(id: b.id!, result: [:])) == nil)  // answered once only
        #expect(s.resolveInbound(.response(id: "forged", result: [:])) == nil)
    }

    @Test("listen filters honour only what the upstream can deliver")
    func filters() {
        let requested = NotificationHub.Filter(["toolsListChanged": true, "promptsListChanged": true, "resourceSubscriptions": ["a://b"]])
        let honoured = requested.honoured(by: ["tools": ["listChanged": true], "prompts": [:], "resources": ["subscribe": true]])
        #expect(honoured.toolsListChanged)
        #expect(!honoured.promptsListChanged)
        #expect(honoured.resourceSubscriptions == ["a://b"])
        #expect(honoured.matches(.notification(method: "notifications/tools/list_changed", params: nil)))
        #expect(honoured.matches(.notification(method: "notifications/resources/updated", params: ["uri": "a://b"])))
        #expect(!honoured.matches(.notification(method: "notifications/resources/updated", params: ["uri": "a://c"])))
        #expect(!honoured.matches(.notification(method: "notifications/progress", params: nil)))
    }
}

extension SessionStore {
    /// Inserts for one test caller; true when inserted.
    func insert(_ session: DownstreamSession) -> Bool {
        if case .inserted = insert(session, caller: "test") { return true }
        return false
    }
}

extension SessionStore.Insertion {
    /// nil: not inserted; .some(nil): inserted without evicting; .some(id): inserted, `id` evicted.
    var evictedID: String?? {
        guard case .inserted(let evicted) = self else { return nil }
        return .some(evicted?.id)
    }
}
