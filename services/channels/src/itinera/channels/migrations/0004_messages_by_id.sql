-- A delivery status notification names its email by id only (its bounce address):
-- finding the email must not read every sandbox's messages.
CREATE INDEX messages_message_id ON messages (message_id);
