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

variable "network" {
  description = "The VPC network id the instance's endpoints live in."
  type        = string
}

variable "subnetwork" {
  description = "The subnetwork id of the Private Service Connect endpoints."
  type        = string
}

variable "shard_count" {
  description = "Shards of the instance (one without cluster mode)."
  type        = number
  default     = 1
  validation {
    condition     = var.shard_count >= 1
    error_message = "shard_count must be at least 1."
  }
}

variable "node_type" {
  description = "Memorystore node type: the memory tier."
  type        = string
  default     = "SHARED_CORE_NANO"
  validation {
    condition     = contains(["SHARED_CORE_NANO", "STANDARD_SMALL", "HIGHMEM_MEDIUM", "HIGHMEM_XLARGE"], var.node_type)
    error_message = "node_type must be one of [SHARED_CORE_NANO, STANDARD_SMALL, HIGHMEM_MEDIUM, HIGHMEM_XLARGE]."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the instance."
  type        = bool
  default     = true
}

variable "iam_auth" {
  description = "Clients AUTH with an IAM access token (the runtime sets NGX_REDIS_IAM_AUTH)."
  type        = bool
  default     = true
}

variable "tls" {
  description = "Server-authenticated TLS in transit (the runtime verifies the instance's CA)."
  type        = bool
  default     = true
}
