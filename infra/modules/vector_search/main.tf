# Vertex AI Vector Search for corpora beyond Firestore's comfort (docs/retrieval.md): a
# streaming-update index of the chunks' embeddings, a public endpoint and one deployed index.
# The functions find it through the outputs (NGX_VECTOR_SEARCH_* settings).

resource "google_vertex_ai_index" "corpus" {
  project             = var.project_id
  region              = var.region
  display_name        = "ngx-corpus-${var.environment}"
  description         = "Corpus chunk embeddings; restricts: visibility, tags."
  index_update_method = "STREAM_UPDATE"
  labels              = { app = "ngx", env = var.environment }

  metadata {
    config {
      dimensions                  = var.dimensions
      approximate_neighbors_count = var.approximate_neighbors
      distance_measure_type       = "COSINE_DISTANCE"
      feature_norm_type           = "UNIT_L2_NORM"
      shard_size                  = var.shard_size

      algorithm_config {
        tree_ah_config {
          leaf_node_embedding_count    = var.leaf_node_embedding_count
          leaf_nodes_to_search_percent = var.leaf_nodes_to_search_percent
        }
      }
    }
  }
}

resource "google_vertex_ai_index_endpoint" "corpus" {
  # checkov:skip=CKV2_GCP_34:every query is authenticated by IAM (only the functions' identities hold aiplatform.user); a Private Service Connect endpoint needs a forwarding rule in the VPC per deployed index
  project                 = var.project_id
  region                  = var.region
  display_name            = "ngx-corpus-${var.environment}"
  description             = "Serves the corpus index to the functions."
  public_endpoint_enabled = true
  labels                  = { app = "ngx", env = var.environment }
}

resource "google_vertex_ai_index_endpoint_deployed_index" "corpus" {
  region            = var.region
  index_endpoint    = google_vertex_ai_index_endpoint.corpus.id
  index             = google_vertex_ai_index.corpus.id
  deployed_index_id = "ngx_corpus_${var.environment}"
  display_name      = "ngx-corpus-${var.environment}"

  automatic_resources {
    min_replica_count = var.min_replicas
    max_replica_count = var.max_replicas
  }
}
