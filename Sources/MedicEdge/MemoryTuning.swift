import Foundation

/// glibc's `mallopt` (from <malloc.h>, which the Glibc module does not map).
@_silgen_name("mallopt") private func c_mallopt(_ param: Int32, _ value: Int32) -> Int32

/// The daemon's memory (CONTRACT §5: under 64 MiB however fast devices publish). glibc gives
/// each thread that allocates its own malloc arena (up to 8 per core), and an arena keeps what
/// a burst made it grow. The daemon's threads (libmosquitto's two network threads, the
/// writer, NIO's event loops, Dispatch workers, libcurl) then hold several burst-sized heaps.
/// Two arenas are enough for its little parallel work.
enum MemoryTuning {
    static let M_ARENA_MAX: Int32 = -8

    static func apply() {
        _ = c_mallopt(M_ARENA_MAX, 2)
    }
}
