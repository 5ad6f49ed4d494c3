variable "project_id" {
  description = "The Google Cloud project that holds the environment."
  type        = string
}

variable "location" {
  description = "Firestore location, e.g. us-central1 or nam5."
  type        = string
}

variable "ttl_collections" {
  description = "Collection ids whose documents carry an `expire_at` TTL field."
  type        = list(string)
  default     = ["conversations", "messages", "idempotency", "confirmations", "corpus_documents", "jobs"]
}

variable "backup_retention_days" {
  description = "Days the daily managed backups are kept."
  type        = number
  default     = 14
  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 98
    error_message = "backup_retention_days must be between 1 and 98 (Firestore's limit is 14 weeks)."
  }
}

variable "embedding_dimensions" {
  description = "Size of the corpus chunks' embeddings (NGX_EMBEDDING_DIMENSIONS): the vector index is built for it."
  type        = number
  default     = 256
}
