-- Retention (itinera.channels.messages.retention): a final message's rendered parts are
-- cleared after ITINERA_CHANNELS_CONTENT_RETENTION_DAYS, the message itself (with its
-- links and opens) deleted after ITINERA_CHANNELS_MESSAGE_RETENTION_DAYS, both counted
-- from when it was taken; provider reports go after them. The sweeps walk these indexes
-- from their oldest end, a chunk at a time.
CREATE INDEX messages_content_kept ON messages (created_at) WHERE content IS NOT NULL;
CREATE INDEX messages_created ON messages (created_at);
CREATE INDEX delivery_reports_received ON delivery_reports (received_at);
