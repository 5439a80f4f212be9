import Dispatch
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs the stub as a process: `medic-edge` (or any wrapper) calls this for its stub command.
public enum CloudStubMain {
    /// Starts the stub, prints `cloud-stub listening on http://HOST:PORT` on standard output and
    /// runs until SIGTERM or SIGINT (or until the calling task is cancelled), then stops it.
    public static func run(port: Int, host: String, seedPath: String?, logger: Logger) async throws {
        let seed = try seedPath.map { try CloudStubSeed.load(path: $0) } ?? CloudStubSeed()
        let stub = CloudStub(seed: seed, logger: logger)
        let stopSignal = StopSignal()
        let sources = [SIGTERM, SIGINT].map { sig -> DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { stopSignal.fire() }
            source.resume()
            return source
        }
        defer {
            for s in sources { s.cancel() }
            signal(SIGTERM, SIG_DFL)
            signal(SIGINT, SIG_DFL)
        }
        let bound = try await stub.start(host: host, port: port)
        FileHandle.standardOutput.write(Data("cloud-stub listening on http://\(host):\(bound)\n".utf8))
        await withTaskCancellationHandler {
            await stopSignal.wait()
        } onCancel: {
            stopSignal.fire()
        }
        logger.info("cloud stub stopping")
        try await stub.stop()
    }
}

/// A one-shot latch that can be fired from any thread, before or after someone waits on it.
final class StopSignal: Sendable {
    private struct State {
        var fired = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func fire() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.fired = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                if s.fired { return true }
                s.waiters.append(c)
                return false
            }
            if resumeNow { c.resume() }
        }
    }
}
