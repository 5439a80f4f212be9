import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The raw bodies of a pull's pages, kept on disk until the pull's write transaction reads them
/// back one page at a time, so that a full pull holds one page in memory, not the roster
/// (`bench idle --patients 50000`: peak VmHWM 173.9 → 62–64 MiB with `RosterId`; docs/benchmarks.md,
/// "Memory (issue 13)").
///
/// The file is created in the data directory (mode 0600 in a 0700 directory, beside the
/// database that holds the same rows) and unlinked at once: it has no name while it is used,
/// and its space goes back when the spool is released, even if the daemon is killed.
final class RosterSpool: Sendable {
    /// Where a page's body is in the file.
    struct Page: Sendable {
        let offset: Int
        let count: Int
    }

    struct SpoolError: Error, CustomStringConvertible {
        let description: String
    }

    private let fd: Int32
    private let size = Mutex<Int>(0)
    /// A bound on the file (a server answering 10,000 pages of 16 MiB must not fill the disk):
    /// 1 GiB is ≈ 1.7 million patients with their appointments.
    let maxBytes: Int

    init(directory: String, maxBytes: Int = 1 << 30) throws {
        var template = Array((directory as NSString).appendingPathComponent(".roster-pull.XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw SpoolError(description: "roster spool: cannot create a file in \(directory) (errno \(errno))") }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        self.fd = fd
        self.maxBytes = maxBytes
    }

    deinit { close(fd) }

    /// Appends one page's body.
    func append(_ bytes: [UInt8]) throws -> Page {
        try size.withLock { end in
            guard end + bytes.count <= maxBytes else {
                throw SpoolError(description: "roster spool: the pull is larger than \(maxBytes >> 20) MiB")
            }
            var done = 0
            while done < bytes.count {
                let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(end + done)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw SpoolError(description: "roster spool: write failed (errno \(errno))") }
                done += n
            }
            defer { end += bytes.count }
            return Page(offset: end, count: bytes.count)
        }
    }

    /// One page's body, read back.
    func read(_ page: Page) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: page.count)
        var done = 0
        while done < page.count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, page.count - done, off_t(page.offset + done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw SpoolError(description: "roster spool: read failed (errno \(errno))") }
            done += n
        }
        return out
    }
}
