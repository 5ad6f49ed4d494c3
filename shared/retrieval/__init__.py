"""Retrieval: embeddings, the corpus store, hybrid search and citations."""
