/// Thompson-NFA simulation with capture slots (Go's `regexp` "machine"): all threads advance in
/// lockstep over the text, in priority order, so the match found is Go's leftmost-first match in
/// O(program × text) time. Following alternatives uses an explicit stack, never recursion.
struct PikeVM {
    /// Visited program counters at one text position (sparse set) plus the runnable threads.
    private struct Queue {
        var sparse: [Int32]
        var dense: [Int32]
        var count = 0
        var threadPCs: [Int32] = []
        var threadSlots: [Int] = []

        init(size: Int) {
            sparse = Array(repeating: 0, count: size)
            dense = Array(repeating: 0, count: size)
        }

        /// Marks `pc` visited; false if it already was.
        @inline(__always) mutating func insert(_ pc: Int) -> Bool {
            let i = Int(sparse[pc])
            if i < count && Int(dense[i]) == pc { return false }
            sparse[pc] = Int32(count)
            dense[count] = Int32(pc)
            count += 1
            return true
        }

        mutating func clear() {
            count = 0
            threadPCs.removeAll(keepingCapacity: true)
            threadSlots.removeAll(keepingCapacity: true)
        }
    }

    let prog: RegexProgram
    let text: [UInt32]
    /// Capture slots tracked (0 = only whether there is a match, 2 = its bounds, more = groups).
    let nslots: Int
    private let anchored: Bool
    private var runq: Queue
    private var nextq: Queue
    private var stack: [Int] = []
    private var slots: [Int]
    private var matchSlots: [Int]
    private var matched = false

    init(_ prog: RegexProgram, text: [UInt32], slots: Int) {
        self.prog = prog
        self.text = text
        nslots = min(slots, prog.numSlots)
        anchored = prog.anchoredStart
        runq = Queue(size: prog.insts.count)
        nextq = Queue(size: prog.insts.count)
        self.slots = Array(repeating: -1, count: nslots)
        matchSlots = Array(repeating: -1, count: nslots)
    }

    @inline(__always) private func scalar(_ i: Int) -> Int32 {
        i >= 0 && i < text.count ? Int32(text[i]) : -1
    }

    private func context(_ pos: Int) -> EmptyOp {
        EmptyOp.context(scalar(pos - 1), scalar(pos))
    }

    /// The leftmost-first match starting at or after `start`: its slots (scalar offsets, -1 unset;
    /// empty when `slots` is 0), or nil.
    mutating func search(from start: Int) -> [Int]? {
        matched = false
        for i in 0..<nslots { matchSlots[i] = -1 }
        runq.clear()
        nextq.clear()
        var pos = start
        while true {
            if runq.threadPCs.isEmpty {
                if anchored && pos != 0 { break }
                if matched { break }
            }
            if !matched && (pos == 0 || !anchored) {
                for i in 0..<nslots { slots[i] = -1 }
                if nslots > 0 { slots[0] = pos }
                addThreads(toNext: false, prog.start, pos, context(pos))
            }
            step(pos, scalar(pos), context(pos + 1))
            if pos >= text.count { break }
            if nslots == 0 && matched { break }
            pos += 1
            swap(&runq, &nextq)
        }
        return matched ? matchSlots : nil
    }

    /// Runs every thread of `runq` over `c` (the scalar at `pos`) into `nextq`, in priority order.
    private mutating func step(_ pos: Int, _ c: Int32, _ nextContext: EmptyOp) {
        nextq.clear()
        for t in 0..<runq.threadPCs.count {
            let inst = prog.insts[Int(runq.threadPCs[t])]
            if inst.op == .match {
                if nslots > 0 {
                    for i in 0..<nslots { matchSlots[i] = runq.threadSlots[t * nslots + i] }
                    matchSlots[1] = pos
                }
                matched = true
                break  // lower-priority threads are cut off
            }
            if prog.matches(inst, c) {
                for i in 0..<nslots { slots[i] = runq.threadSlots[t * nslots + i] }
                addThreads(toNext: true, Int(inst.out), pos + 1, nextContext)
            }
        }
        runq.clear()
    }

    private mutating func addThreads(toNext: Bool, _ pc: Int, _ pos: Int, _ ctx: EmptyOp) {
        var q = Queue(size: 0)
        if toNext { swap(&q, &nextq) } else { swap(&q, &runq) }
        add(&q, pc, pos, ctx)
        if toNext { swap(&q, &nextq) } else { swap(&q, &runq) }
    }

    /// Follows empty transitions from `pc0` at `pos`, depth first in priority order, queueing a
    /// thread (with a copy of `slots`) at each instruction that consumes a scalar or matches.
    private mutating func add(_ q: inout Queue, _ pc0: Int, _ pos: Int, _ ctx: EmptyOp) {
        stack.append(pc0)
        while let x = stack.popLast() {
            if x < 0 {
                slots[~x] = stack.removeLast()
                continue
            }
            guard q.insert(x) else { continue }
            let inst = prog.insts[x]
            switch inst.op {
            case .fail: break
            case .alt:
                stack.append(Int(inst.arg))
                stack.append(Int(inst.out))
            case .nop: stack.append(Int(inst.out))
            case .empty:
                if ctx.isSuperset(of: EmptyOp(rawValue: UInt8(inst.arg))) { stack.append(Int(inst.out)) }
            case .capture:
                let slot = Int(inst.arg)
                if slot < nslots {
                    stack.append(slots[slot])
                    stack.append(~slot)
                    slots[slot] = pos
                }
                stack.append(Int(inst.out))
            case .match, .rune1, .runeClass, .any, .anyNotNL:
                q.threadPCs.append(Int32(x))
                q.threadSlots.append(contentsOf: slots)
            }
        }
    }
}
