variable "project_id" {
  description = "The Google Cloud project that holds the environment."
  type        = string
}

variable "region" {
  description = "The Google Cloud region of the services, e.g. us-central1."
  type        = string
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1."
  }
}

variable "environment" {
  description = "staging or prod; names and labels carry it."
  type        = string
  validation {
    condition     = contains(["staging", "prod"], var.environment)
    error_message = "environment must be staging or prod."
  }
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
  description = "The services' subnet; direct VPC egress takes about two addresses per instance."
  type        = string
  default     = "10.8.0.0/24"
  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0))
    error_message = "subnet_cidr must be an IPv4 CIDR block such as 10.8.0.0/24."
  }
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

variable "support_members" {
  description = "Identities (user:…, group:…, serviceAccount:…) of the support team's tools that read hand-off announcements."
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

variable "tools_file" {
  description = "Path, inside the image, of the agent's tools file (TOML, see docs/agent.md) for chat and stream; null: no tools."
  type        = string
  default     = null
}

variable "tool_secret_env" {
  description = "Credentials of the agent's tools, for chat and stream: environment variable (as the tools file names it) → Secret Manager secret id."
  type        = map(string)
  default     = {}
}

variable "memorystore_node_type" {
  description = "Memorystore node type: the cache's memory tier."
  type        = string
  default     = "SHARED_CORE_NANO"
  validation {
    condition     = contains(["SHARED_CORE_NANO", "STANDARD_SMALL", "HIGHMEM_MEDIUM", "HIGHMEM_XLARGE"], var.memorystore_node_type)
    error_message = "memorystore_node_type must be SHARED_CORE_NANO, STANDARD_SMALL, HIGHMEM_MEDIUM or HIGHMEM_XLARGE."
  }
}

variable "memorystore_shard_count" {
  description = "Shards of the cache instance."
  type        = number
  default     = 1
}

variable "backup_keep_days" {
  description = "Logical backups younger than this are kept (NGX_BACKUP_KEEP_DAYS)."
  type        = number
  default     = 30
  validation {
    condition     = var.backup_keep_days >= 0
    error_message = "backup_keep_days cannot be negative."
  }
}

variable "conversation_retention_days" {
  description = "0 keeps conversations; N: Firestore TTL deletes them N days after their last message."
  type        = number
  default     = 0
  validation {
    condition     = var.conversation_retention_days >= 0 && var.conversation_retention_days <= 3650
    error_message = "conversation_retention_days must be between 0 and 3650."
  }
}

variable "firestore_backup_retention_days" {
  description = "Retention of Firestore's managed daily backups."
  type        = number
  default     = 14
  validation {
    condition     = var.firestore_backup_retention_days >= 1 && var.firestore_backup_retention_days <= 98
    error_message = "firestore_backup_retention_days must be between 1 and 98 (14 weeks)."
  }
}

variable "artifact_keep_count" {
  description = "Images kept in Artifact Registry regardless of age (rollback targets)."
  type        = number
  default     = 20
}

variable "notification_channels" {
  description = "Notification channel ids every alert notifies (preflight requires one in prod)."
  type        = list(string)
  default     = []
}

variable "deletion_protection" {
  description = "Refuse to delete services, the cache and the database."
  type        = bool
  default     = true
}

variable "schedules" {
  description = "cron (UTC) of each scheduled job."
  type        = map(string)
  default = {
    cache_apply   = "15 * * * *"
    backup_run    = "0 2 * * *"
    backup_prune  = "30 3 * * *"
    backup_verify = "0 5 * * 1"
    # yesterday's business metrics, after the day's late feedback has had an hour
    business_metrics = "0 1 * * *"
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

variable "loadtest" {
  description = "Run the periodic load test job against this environment (staging: on)."
  type        = bool
  default     = false
}

variable "vector_search" {
  description = "Serve the retrieval corpus's vectors from Vertex AI Vector Search instead of Firestore (docs/retrieval.md says when); null: Firestore."
  type = object({
    shard_size                   = optional(string, "SHARD_SIZE_SMALL")
    leaf_nodes_to_search_percent = optional(number, 10)
    min_replicas                 = optional(number, 1)
    max_replicas                 = optional(number, 2)
  })
  default = null
}

variable "retrieval_rerank" {
  description = "Re-rank retrieved chunks through Vertex AI's ranking API (chat and stream get NGX_RETRIEVAL_RERANK and the one permission it needs); measure the gain first with agentctl corpus eval --rerank."
  type        = bool
  default     = false
}
