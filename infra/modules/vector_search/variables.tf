variable "project_id" {
  description = "The Google Cloud project that holds the environment."
  type        = string
}

variable "region" {
  description = "The region of the index and its endpoint (the functions' region)."
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

variable "dimensions" {
  description = "Size of the embeddings (NGX_EMBEDDING_DIMENSIONS)."
  type        = number
  default     = 256
}

variable "approximate_neighbors" {
  description = "Neighbours gathered before exact re-scoring, by default (a query may override it: NGX_VECTOR_SEARCH_APPROXIMATE_NEIGHBORS)."
  type        = number
  default     = 150
}

variable "shard_size" {
  description = "SHARD_SIZE_SMALL (up to about 2 GiB of vectors per shard), _MEDIUM or _LARGE."
  type        = string
  default     = "SHARD_SIZE_SMALL"
  validation {
    condition     = contains(["SHARD_SIZE_SMALL", "SHARD_SIZE_MEDIUM", "SHARD_SIZE_LARGE"], var.shard_size)
    error_message = "shard_size must be SHARD_SIZE_SMALL, SHARD_SIZE_MEDIUM or SHARD_SIZE_LARGE."
  }
}

variable "leaf_node_embedding_count" {
  description = "Embeddings per leaf of the ScaNN tree (the IVF list size)."
  type        = number
  default     = 500
}

variable "leaf_nodes_to_search_percent" {
  description = "Share of leaves searched by default, in percent (efSearch / nprobe; a query may override it: NGX_VECTOR_SEARCH_LEAF_FRACTION)."
  type        = number
  default     = 10
  validation {
    condition     = var.leaf_nodes_to_search_percent >= 1 && var.leaf_nodes_to_search_percent <= 100
    error_message = "leaf_nodes_to_search_percent must be between 1 and 100."
  }
}

variable "min_replicas" {
  description = "Serving replicas kept warm."
  type        = number
  default     = 1
  validation {
    condition     = var.min_replicas >= 1
    error_message = "min_replicas must be at least 1 (a deployed index always serves)."
  }
}

variable "max_replicas" {
  description = "Serving replicas at most (autoscaling)."
  type        = number
  default     = 2
  validation {
    condition     = var.max_replicas >= 1
    error_message = "max_replicas must be at least 1 (and not below min_replicas)."
  }
}
