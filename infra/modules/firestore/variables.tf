variable "project_id" { type = string }

variable "location" {
  description = "Firestore location, e.g. us-central1 or nam5."
  type        = string
}

variable "ttl_collections" {
  description = "Collection ids whose documents carry an `expire_at` TTL field."
  type        = list(string)
  default     = ["conversations", "messages", "idempotency"]
}

variable "backup_retention_days" {
  type    = number
  default = 14
}
