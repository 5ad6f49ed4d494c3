"""Where the corpus lives in Firestore (one place, read by the writers and the search alike)."""

DOCUMENTS = "corpus_documents"
CHUNKS = "corpus_chunks"
VERSION_DOC = ("config", "corpus")
