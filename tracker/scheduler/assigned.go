package scheduler

// Assigned reports the parent of child's in-flight assignment of piece in
// task, if there is one. It changes nothing: the tracker asks it before Done
// to learn which parent a finished piece came from (bytes per edge of the
// swarm graph). Unknown tasks, peers or pieces, and pieces not in flight to
// child, report false.
func (s *Scheduler) Assigned(taskName, child string, piece int) (parent string, ok bool) {
	t, ok := s.tasks[taskName]
	if !ok || piece < 0 || piece >= t.pieces {
		return "", false
	}
	c, ok := t.peers[child]
	if !ok {
		return "", false
	}
	st := c.st[piece]
	if st >= stMissing {
		return "", false
	}
	return c.inflight[inflightIndex(st)].parent.id, true
}
