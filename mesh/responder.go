package mesh

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
)

// Responder answers requests by rules, so that a program need not write the
// plumbing. A rule is keyed by the request's
// type and is either a fixed reply (Static) or a function (Handle). Rules may
// be added and removed while the node runs (a dynamic ruleset) until Freeze
// makes them fixed (a frozen ruleset, which then needs no lock to read).
//
// A node with a Responder (NodeConfig.Responder) answers, on a goroutine of
// its own, every request whose type has a rule; the others reach Get as
// usual. A function's error becomes a refusal that the requester sees as
// ErrRefused with the error's text. One Responder serves one node.
type Responder struct {
	// mu guards rules until frozen is set; after that they are read only.
	mu     sync.RWMutex
	rules  map[reflect.Type]rule
	frozen bool

	q *queue[Message]
}

type rule struct {
	reply any
	fn    func(Message) (any, error)
}

// NewResponder returns a Responder with no rules.
func NewResponder() *Responder { return &Responder{rules: map[reflect.Type]rule{}} }

func typeKey(v any) reflect.Type {
	t := reflect.TypeOf(v)
	if t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// Static answers every request of req's type with reply.
func (r *Responder) Static(req, reply any) error { return r.set(req, rule{reply: reply}) }

// Handle answers every request of req's type with what fn returns: a reply
// message, or an error that refuses the request. fn runs on the responder's
// goroutine, one request at a time.
func (r *Responder) Handle(req any, fn func(Message) (any, error)) error {
	if fn == nil {
		return fmt.Errorf("mesh: Handle of %T with a nil function", req)
	}
	return r.set(req, rule{fn: fn})
}

// Remove drops the rule for req's type.
func (r *Responder) Remove(req any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frozen {
		return ErrFrozen
	}
	delete(r.rules, typeKey(req))
	return nil
}

// Freeze fixes the rules: later changes return ErrFrozen.
func (r *Responder) Freeze() {
	r.mu.Lock()
	r.frozen = true
	r.mu.Unlock()
}

func (r *Responder) set(req any, ru rule) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frozen {
		return ErrFrozen
	}
	r.rules[typeKey(req)] = ru
	return nil
}

func (r *Responder) lookup(msg any) (rule, bool) {
	r.mu.RLock()
	ru, ok := r.rules[typeKey(msg)]
	r.mu.RUnlock()
	return ru, ok
}

func (r *Responder) knows(msg any) bool {
	_, ok := r.lookup(msg)
	return ok
}

// start runs the responder's goroutine for n.
func (r *Responder) start(n *Node) {
	r.q = newQueue[Message](n.cfg.Limits.ReceiveQueue)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		var batch []Message
		for {
			batch = r.q.popMany(batch[:0], takeBatch)
			if len(batch) == 0 {
				select {
				case <-r.q.ready:
					continue
				case <-n.ctx.Done():
					return
				}
			}
			for i, m := range batch {
				r.answer(n, m)
				batch[i] = Message{}
			}
		}
	}()
}

func (r *Responder) answer(n *Node, m Message) {
	ru, ok := r.lookup(m.Msg)
	var reply any
	var err error
	switch {
	case !ok: // removed since it was queued
		err = fmt.Errorf("no rule for %T", m.Msg)
	case ru.fn != nil:
		reply, err = ru.fn(m)
	default:
		reply = ru.reply
	}
	if err == nil && reply == nil {
		err = errors.New("the responder gave no reply")
	}
	if err != nil {
		err = n.Refuse(m, err.Error())
	} else {
		err = n.Reply(m, reply)
	}
	if err != nil {
		n.log.Debug("mesh: responder could not answer", "peer", m.FromName, "err", err)
	}
}
