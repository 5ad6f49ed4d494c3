variable "project_id" { type = string }
variable "region" { type = string }

variable "environment" {
  description = "staging or prod; names and labels carry it."
  type        = string
}

variable "firestore_location" {
  description = "Firestore location: a region or a multi-region such as nam5."
  type        = string
}

variable "image" {
  description = "The first image deployed; Cloud Build deploys every later one (Terraform ignores it)."
  type        = string
}

variable "subnet_cidr" {
  type    = string
  default = "10.8.0.0/24"
}

variable "services" {
  description = "Sizing of each function's Cloud Run service."
  type = map(object({
    cpu           = string
    memory        = string
    concurrency   = number
    min_instances = number
    max_instances = number
    timeout_s     = number
  }))
}

variable "operator_members" {
  description = "Identities (user:…, group:…, serviceAccount:…) who may invoke backup for restores."
  type        = list(string)
  default     = []
}

variable "secret_env" {
  description = "Per function: environment variable → Secret Manager secret id."
  type        = map(map(string))
  default     = {}
}

variable "extra_env" {
  description = "Per function: extra NGX_* settings."
  type        = map(map(string))
  default     = {}
}

variable "memorystore_node_type" {
  type    = string
  default = "SHARED_CORE_NANO"
}

variable "memorystore_shard_count" {
  type    = number
  default = 1
}

variable "backup_keep_days" {
  description = "Logical backups younger than this are kept (NGX_BACKUP_KEEP_DAYS)."
  type        = number
  default     = 30
}

variable "conversation_retention_days" {
  description = "0 keeps conversations; N: Firestore TTL deletes them N days after their last message."
  type        = number
  default     = 0
}

variable "firestore_backup_retention_days" {
  description = "Retention of Firestore's managed daily backups."
  type        = number
  default     = 14
}

variable "artifact_keep_count" {
  description = "Images kept in Artifact Registry regardless of age (rollback targets)."
  type        = number
  default     = 20
}

variable "notification_channels" {
  type    = list(string)
  default = []
}

variable "deletion_protection" {
  type    = bool
  default = true
}

variable "schedules" {
  description = "cron (UTC) of each scheduled job."
  type        = map(string)
  default = {
    cache_apply   = "15 * * * *"
    backup_run    = "0 2 * * *"
    backup_prune  = "30 3 * * *"
    backup_verify = "0 5 * * 1"
  }
}

variable "cors_origins" {
  description = "Browser origins allowed to call chat and stream (exact https origins); [] allows none."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for o in var.cors_origins : o != "*" && can(regex("^https?://[^/*]+$", o))])
    error_message = "cors_origins are exact origins such as https://app.example.com: no \"*\", no paths."
  }
}

variable "memorystore_iam_auth" {
  description = "Memorystore IAM authentication: functions present their service account's access token."
  type        = bool
  default     = true
}

variable "memorystore_tls" {
  description = "Memorystore in-transit encryption; the instance's CA reaches the functions as a secret."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the project's _Default log bucket, where request and model-call lines land."
  type        = number
  default     = 30
  validation {
    condition     = var.log_retention_days >= 1 && var.log_retention_days <= 3650
    error_message = "log_retention_days must be between 1 and 3650."
  }
}
