# Firestore (native mode): point-in-time recovery, delete protection, TTL on every `expire_at`,
# the composite indexes the queries need, and a managed daily backup schedule.

resource "google_firestore_database" "this" {
  project                           = var.project_id
  name                              = "(default)"
  location_id                       = var.location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"
}

# Documents whose `expire_at` has passed are deleted by Firestore (within about a day).
resource "google_firestore_field" "ttl" {
  for_each   = toset(var.ttl_collections)
  project    = var.project_id
  database   = google_firestore_database.this.name
  collection = each.value
  field      = "expire_at"

  ttl_config {}

  # A TTL field needs no index of its own.
  index_config {}
}

# `GET /v1/conversations`: a user's conversations, newest first.
resource "google_firestore_index" "conversations_by_owner" {
  project    = var.project_id
  database   = google_firestore_database.this.name
  collection = "conversations"

  fields {
    field_path = "owner"
    order      = "ASCENDING"
  }

  fields {
    field_path = "updated_at"
    order      = "DESCENDING"
  }
}

resource "google_firestore_backup_schedule" "daily" {
  project   = var.project_id
  database  = google_firestore_database.this.name
  retention = "${var.backup_retention_days * 86400}s"

  daily_recurrence {}
}

# A user's messages across conversations (erasure, export): a collection-group query on owner.
resource "google_firestore_field" "message_owner" {
  project    = var.project_id
  database   = google_firestore_database.this.name
  collection = "messages"
  field      = "owner"

  index_config {
    indexes {
      order       = "ASCENDING"
      query_scope = "COLLECTION_GROUP"
    }
  }
}

# Retrieval: nearest chunks by cosine distance, pre-filtered on their visibility (`find_nearest`
# after `where("visibility", "in", …)` needs this composite vector index; the emulator does not).
resource "google_firestore_index" "corpus_chunks_by_visibility" {
  project    = var.project_id
  database   = google_firestore_database.this.name
  collection = "corpus_chunks"

  fields {
    field_path = "visibility"
    order      = "ASCENDING"
  }

  fields {
    field_path = "embedding"
    vector_config {
      dimension = var.embedding_dimensions
      flat {}
    }
  }
}

# The same, narrowed to documents carrying one of the request's `retrieval_tags`
# (`where("tags", "array_contains_any", …)` beside the visibility filter).
resource "google_firestore_index" "corpus_chunks_by_visibility_and_tags" {
  project    = var.project_id
  database   = google_firestore_database.this.name
  collection = "corpus_chunks"

  fields {
    field_path = "visibility"
    order      = "ASCENDING"
  }

  fields {
    field_path   = "tags"
    array_config = "CONTAINS"
  }

  fields {
    field_path = "embedding"
    vector_config {
      dimension = var.embedding_dimensions
      flat {}
    }
  }
}
