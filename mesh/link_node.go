package mesh

import (
	"fmt"

	"github.com/lanmesh/lanmesh/codec"
)

// sendFrame queues an already encoded frame (Broadcast encodes once for all
// links). It follows Send's rules: never blocks, ErrBackpressure past the
// limit, the link's error once it closes.
func (l *Link) sendFrame(frame []byte) error {
	l.sendMu.Lock()
	if l.closing {
		l.sendMu.Unlock()
		return l.cause.Load()
	}
	if len(l.pending)+len(frame) > l.cfg.SendBufferLimit {
		l.sendMu.Unlock()
		return ErrBackpressure
	}
	l.pending = append(l.pending, frame...)
	l.sendMu.Unlock()
	l.stats.msgsOut.Add(1)
	if l.cfg.AutoFlush {
		signal(l.flushReq)
	}
	return nil
}

// sendPair queues a marker (a request or reply header) and the message it
// marks together, so that no other Send can come between them.
func (l *Link) sendPair(marker, msg any) error {
	l.sendMu.Lock()
	if l.closing {
		l.sendMu.Unlock()
		return l.cause.Load()
	}
	n := len(l.pending)
	buf, err := l.codec.AppendFrame(l.pending, marker)
	if err == nil {
		buf, err = l.codec.AppendFrame(buf, msg)
	}
	if err != nil {
		l.pending = buf[:n]
		l.sendMu.Unlock()
		return err
	}
	if len(buf) > l.cfg.SendBufferLimit {
		l.pending = buf[:n]
		l.sendMu.Unlock()
		if len(buf)-n > l.cfg.SendBufferLimit {
			return fmt.Errorf("%w: %d bytes exceed SendBufferLimit %d", codec.ErrFrameTooLarge, len(buf)-n, l.cfg.SendBufferLimit)
		}
		return ErrBackpressure
	}
	l.pending = buf
	l.sendMu.Unlock()
	l.stats.msgsOut.Add(1)
	if l.cfg.AutoFlush {
		signal(l.flushReq)
	}
	return nil
}
