package lane

import "sync/atomic"

// Stats counts a lane's traffic and everything it dropped, by reason. Every
// counter only grows.
type Stats struct {
	SentDatagrams uint64 // datagrams handed to the send function without error
	SentBytes     uint64
	SentMessages  uint64 // application messages sent (pings and pongs not counted)
	SendErrors    uint64 // datagrams the send function refused (their messages are lost)

	RecvDatagrams     uint64 // datagrams accepted (authentic, new, well formed)
	RecvBytes         uint64
	DeliveredMessages uint64 // application messages handed to the caller

	// Datagrams dropped on receipt, by reason.
	DropMalformed uint64 // truncated, unknown version, broken format (ErrTruncated, ErrVersion, ErrMalformed)
	DropSession   uint64 // another session's token, or another source address (ErrSession)
	DropMode      uint64 // sealed on an unkeyed lane or clear on a keyed one (ErrMode)
	DropAuth      uint64 // failed to open: forged, changed, wrong key (ErrAuth)
	DropReplay    uint64 // counter seen already (ErrReplay)
	DropTooOld    uint64 // counter behind the replay window (ErrTooOld)

	// Messages dropped.
	DropStale     uint64 // sequenced, older than the newest delivered on its channel
	DropQueueFull uint64 // unreliable, the send queue was full (ErrQueueFull)
	Superseded    uint64 // sequenced, replaced in the send queue by a newer one before it was sent
	RefusedLarge  uint64 // refused at Enqueue: too large for one datagram (ErrTooLarge)

	PingsSent  uint64
	PongsRecv  uint64
	PongsStale uint64 // a pong for no ping in flight (too late, or never asked)

	// Pacing (SPEC.md section 11.9).
	AcksRecv uint64 // acks of this side's datagrams
	Paced    uint64 // flushes that held messages back to keep to the path's rate
	PaceCuts uint64 // times a queue on the path made the sender slow down
	// PaceRate is the sending limit now, in bytes a second; 0 when none
	// (the path has shown no queue, or the limit has not bound lately).
	PaceRate uint64
}

// counters is Stats as atomics, shared by a lane's sender and receiver.
type counters struct {
	sentDatagrams, sentBytes, sentMessages, sendErrors atomic.Uint64
	recvDatagrams, recvBytes, deliveredMessages        atomic.Uint64
	dropMalformed, dropSession, dropMode, dropAuth     atomic.Uint64
	dropReplay, dropTooOld                             atomic.Uint64
	dropStale, dropQueueFull, superseded, refusedLarge atomic.Uint64
	pingsSent, pongsRecv, pongsStale                   atomic.Uint64
	acksRecv, paced                                    atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		SentDatagrams: c.sentDatagrams.Load(), SentBytes: c.sentBytes.Load(),
		SentMessages: c.sentMessages.Load(), SendErrors: c.sendErrors.Load(),
		RecvDatagrams: c.recvDatagrams.Load(), RecvBytes: c.recvBytes.Load(),
		DeliveredMessages: c.deliveredMessages.Load(),
		DropMalformed:     c.dropMalformed.Load(), DropSession: c.dropSession.Load(),
		DropMode: c.dropMode.Load(), DropAuth: c.dropAuth.Load(),
		DropReplay: c.dropReplay.Load(), DropTooOld: c.dropTooOld.Load(),
		DropStale: c.dropStale.Load(), DropQueueFull: c.dropQueueFull.Load(),
		Superseded: c.superseded.Load(), RefusedLarge: c.refusedLarge.Load(),
		PingsSent: c.pingsSent.Load(), PongsRecv: c.pongsRecv.Load(), PongsStale: c.pongsStale.Load(),
		AcksRecv: c.acksRecv.Load(), Paced: c.paced.Load(),
	}
}
