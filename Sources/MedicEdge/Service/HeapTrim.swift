import Foundation

/// Gives the heap's free pages back to the kernel: glibc's `malloc_trim(0)`, found once by
/// `dlsym` (the Glibc module does not map <malloc.h>). glibc returns freed memory only from
/// the top of a heap; what a burst freed in the middle stays resident until trimmed.
/// `bench idle --patients 10000`: RssAnon 31.9 MiB after a roster pull, 9.7 MiB trimmed
/// (docs/benchmarks.md, "Memory (issue 13)").
enum HeapTrim {
    private typealias Trim = @convention(c) (Int) -> Int32
    /// Looked up at first use.
    private static let trim: Trim? = {
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: Trim.self)
    }()

    /// Returns the free pages of every malloc arena (a no-op where there is no `malloc_trim`).
    static func run() {
        _ = trim?(0)
    }
}
