-- An audience's data usage labels (AEP's `labels`, e.g. `C1`), as its creator gave them
-- through `/audiences`: kept and shown, not enforced here.
ALTER TABLE segment_definitions ADD COLUMN labels text[] NOT NULL DEFAULT '{}';
