-- A message is in one retention index at a time, not two: while it holds its rendered
-- parts in messages_content_kept, once they are cleared (or when it never had any: an
-- excluded request) in messages_cleared, which the deletion walks. The content retention
-- is never longer than the message's (settings), so a final message is cleared before
-- it is old enough to go.
DROP INDEX messages_created;
CREATE INDEX messages_cleared ON messages (created_at) WHERE content IS NULL;
