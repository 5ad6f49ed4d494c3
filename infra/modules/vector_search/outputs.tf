output "settings" {
  description = "The functions' NGX_VECTOR_* settings for this index."
  value = {
    NGX_VECTOR_BACKEND                  = "vertex"
    NGX_VECTOR_SEARCH_ENDPOINT          = google_vertex_ai_index_endpoint.corpus.public_endpoint_domain_name
    NGX_VECTOR_SEARCH_INDEX_ENDPOINT    = google_vertex_ai_index_endpoint.corpus.id
    NGX_VECTOR_SEARCH_DEPLOYED_INDEX_ID = google_vertex_ai_index_endpoint_deployed_index.corpus.deployed_index_id
    NGX_VECTOR_SEARCH_INDEX             = google_vertex_ai_index.corpus.id
  }
}
