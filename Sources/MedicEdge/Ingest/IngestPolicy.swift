import EdgeCore

/// The ingest rules, written once: how large a batch grows and how long it may wait for more,
/// which messages are urgent (kiosk scans: a patient is waiting) and how their lane behaves.
/// The MQTT links (which messages queue as urgent, which topics go on which link, each
/// link's intake share), the ingest loop (order, linger) and the pipeline (when a transaction
/// commits) read them here.
///
/// The urgent lane: kiosk scans have a connection of their own (the kiosk link), drained
/// before the main one, and an urgent queue in each client that is handed out first. A batch
/// starts with the scans waiting; scans commit on their own, never behind telemetry; a scan
/// that arrives while a batch runs joins its transaction, which then commits at once (one
/// fsync between the scan and its result). Results go out on the kiosk link (QoS 1), acks on
/// the main one (QoS 0: a lost ack only means a resend, CONTRACT §1).
struct IngestPolicy: Sendable {
    /// A batch: at most this many messages…
    var maxBatch = 256
    /// …and its transaction takes no more (but scans) after this long.
    var maxBatchNs: UInt64 = 20_000_000
    /// Under a steady stream (at least `lingerFrom` messages came during the last batch), a
    /// small batch (fewer than `lingerBelow`) of telemetry waits up to `lingerNs` for more,
    /// looking every `lingerPollNs`: every commit (and its WAL write and fsync) then carries
    /// several times more messages, which is what lets a busy box keep up. A lone message
    /// never waits; nor does a batch with a scan in hand, and the wait ends as soon as one
    /// arrives.
    var lingerFrom = 8
    var lingerBelow = 64
    var lingerNs: UInt64 = 2_000_000
    var lingerPollNs: UInt64 = 250_000

    static let standard = IngestPolicy()

    /// The daemon's two connections to the broker.
    enum Link: Sendable, Equatable {
        /// `client_id`: every device topic but kiosk scans; acks go out on it.
        case main
        /// `<client_id>-kiosk`, a persistent session of its own: kiosk scans only; their
        /// results go out on it. A device flood queues at the broker behind the main
        /// connection, never in front of a scan.
        case kiosk
    }

    // MARK: the urgent lane

    /// The link a subscription goes on.
    func link(forSubscription filter: String, site: String) -> Link {
        filter.hasPrefix("clinic/\(site)/kiosk/") ? .kiosk : .main
    }
    /// The device subscriptions a link makes.
    func subscriptions(_ link: Link, site: String) -> [String] {
        DeviceTopic.subscriptions(site: site).filter { self.link(forSubscription: $0, site: site) == link }
    }
    /// Queued as urgent: everything on the kiosk link; on the main link, a kiosk scan (still
    /// subscribed there by a session an older version made).
    func isUrgent(_ message: DeviceMessage, on link: Link) -> Bool {
        if link == .kiosk { return true }
        if case .kiosk = message { return true }
        return false
    }
    /// A link's part of `mqtt.max_pending_bytes` (CONTRACT §5): the kiosk link's is small
    /// (scans are small; a looping kiosk still cannot take more), the main link has the rest.
    func intakeShare(_ link: Link, maxPendingBytes: Int) -> Int {
        let kiosk = Swift.min(1 << 20, maxPendingBytes / 8)
        return link == .kiosk ? kiosk : maxPendingBytes - kiosk
    }
    /// Where a reply goes once its batch is committed: a kiosk result on the kiosk link at
    /// QoS 1, a device ack on the main link at QoS 0.
    func route(kioskResult: Bool) -> (link: Link, qos: Int32) {
        kioskResult ? (.kiosk, 1) : (.main, 0)
    }

    // MARK: batches

    /// The order a batch is processed in: urgent messages (drained first), then the
    /// carried-over rest of the last batch (it stopped early for a scan), then the others.
    func order<M>(urgent: [M], carry: [M], others: [M]) -> [M] {
        if carry.isEmpty && urgent.isEmpty { return others }
        return urgent + carry + others
    }
    /// A batch in hand waits for more (see `lingerFrom`).
    func lingers(count: Int, holdsUrgent: Bool) -> Bool {
        count >= lingerFrom && count < lingerBelow && !holdsUrgent
    }
    /// The wait ends: a scan is waiting (urgent on either link, anything on the kiosk link),
    /// or the batch would be large enough.
    func lingerEnds(inHand: Int, urgentWaiting: Int, othersWaiting: Int) -> Bool {
        urgentWaiting > 0 || inHand + othersWaiting >= lingerBelow
    }

    /// Inside a batch's transaction, before its next message.
    enum Step: Equatable {
        /// Take it.
        case take
        /// Commit now; the rest goes in the next batch.
        case commit
        /// Scans arrived: they join this transaction, which then commits.
        case joinScansAndCommit
    }
    /// What to do before the next message, `taken` messages into the batch: scans come first
    /// and are committed on their own; other messages go on until `maxBatchNs`, or until a
    /// scan arrives (`scansArrived`, asked only when it matters).
    func step(
        taken: Int, nextUrgent: Bool, lastUrgent: Bool, elapsedNs: @autoclosure () -> UInt64,
        scansArrived: () -> Bool
    ) -> Step {
        guard taken > 0, !nextUrgent else { return .take }
        if lastUrgent { return .commit }
        if scansArrived() { return .joinScansAndCommit }
        return elapsedNs() > maxBatchNs ? .commit : .take
    }
}
