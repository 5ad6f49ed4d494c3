variable "project_id" {
  description = "The Google Cloud project that holds the environment."
  type        = string
}

variable "environment" {
  description = "staging or prod; names and labels carry it."
  type        = string
  validation {
    condition     = contains(["staging", "prod"], var.environment)
    error_message = "environment must be staging or prod."
  }
}

variable "services" {
  description = "Cloud Run service names whose CPU and memory the dashboard shows."
  type        = list(string)
}

variable "notification_channels" {
  description = "Notification channel ids every alert notifies."
  type        = list(string)
  default     = []
}

variable "usage_tokens_per_minute" {
  description = "VertexAIHighUsage: tokens (in + out) per minute sustained for usage_duration_s."
  type        = number
  default     = 100000
}

variable "usage_duration_s" {
  description = "VertexAIHighUsage: how long the condition must hold, in seconds."
  type        = number
  default     = 900
}

variable "error_ratio" {
  description = "VertexAIHighErrorRate: failed calls / all calls sustained for error_duration_s."
  type        = number
  default     = 0.05
  validation {
    condition     = var.error_ratio > 0 && var.error_ratio < 1
    error_message = "error_ratio is a share between 0 and 1."
  }
}

variable "error_duration_s" {
  description = "VertexAIHighErrorRate: how long the condition must hold, in seconds."
  type        = number
  default     = 300
}

variable "cache_hit_ratio" {
  description = "VertexAILowCacheHitRate: cache hits / lookups below this for cache_duration_s."
  type        = number
  default     = 0.5
  validation {
    condition     = var.cache_hit_ratio > 0 && var.cache_hit_ratio < 1
    error_message = "cache_hit_ratio is a share between 0 and 1."
  }
}

variable "cache_duration_s" {
  description = "VertexAILowCacheHitRate: how long the condition must hold, in seconds."
  type        = number
  default     = 1800
}

variable "latency_threshold_ms" {
  description = "The latency SLO: calls answered within this many milliseconds ..."
  type        = number
  default     = 2000
}

variable "latency_goal" {
  description = "... for this share of calls (0.95 = P95) over a rolling 28 days."
  type        = number
  default     = 0.95
  validation {
    condition     = var.latency_goal > 0 && var.latency_goal < 1
    error_message = "latency_goal is a share between 0 and 1, e.g. 0.95."
  }
}

variable "public_services" {
  description = "Cloud Run services that get an availability SLO (the public API)."
  type        = list(string)
  default     = []
}

variable "availability_goal" {
  description = "Share of a public service's requests that must not fail (5xx), over 28 days."
  type        = number
  default     = 0.995
  validation {
    condition     = var.availability_goal > 0 && var.availability_goal < 1
    error_message = "availability_goal is a share between 0 and 1, e.g. 0.995."
  }
}
