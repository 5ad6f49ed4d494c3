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

variable "name" {
  description = "The function: chat, stream, cache_maintenance or backup (FUNCTION_TARGET)."
  type        = string
  validation {
    condition     = contains(["chat", "stream", "cache_maintenance", "backup"], var.name)
    error_message = "name must be a registered function (shared/registry.py)."
  }
}

variable "image" {
  description = "The first image deployed; Cloud Build deploys every later one."
  type        = string
}

variable "network" {
  description = "The VPC network of direct VPC egress."
  type        = string
}

variable "subnetwork" {
  description = "The subnetwork of direct VPC egress."
  type        = string
}

variable "public" {
  description = "Invokable by allUsers (the app authenticates callers itself)."
  type        = bool
  default     = false
}

variable "invokers" {
  description = "Members allowed to invoke a private service."
  type        = list(string)
  default     = []
}

variable "project_roles" {
  description = "Project roles of the service's own service account (least privilege)."
  type        = list(string)
  default     = []
}

variable "env" {
  description = "Plain environment variables (NGX_* settings)."
  type        = map(string)
  default     = {}
}

variable "secret_env" {
  description = "Environment variable name to Secret Manager secret id."
  type        = map(string)
  default     = {}
}

variable "cpu" {
  description = "vCPUs per instance."
  type        = string
  default     = "1"
  validation {
    condition     = contains(["1", "2", "4", "6", "8"], var.cpu)
    error_message = "cpu must be 1, 2, 4, 6 or 8."
  }
}

variable "memory" {
  description = "Memory per instance, e.g. 512Mi or 1Gi."
  type        = string
  default     = "512Mi"
  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.memory))
    error_message = "memory must be like 512Mi or 2Gi."
  }
}

variable "concurrency" {
  description = "Requests one instance serves at once."
  type        = number
  default     = 80
  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000
    error_message = "concurrency must be between 1 and 1000."
  }
}

variable "session_affinity" {
  description = "Send a client's requests to the same instance while it lives (WebSocket reconnects)."
  type        = bool
  default     = false
}

variable "timeout_s" {
  description = "Request timeout in seconds (a stream or WebSocket lasts at most this)."
  type        = number
  default     = 300
  validation {
    condition     = var.timeout_s >= 1 && var.timeout_s <= 3600
    error_message = "timeout_s must be between 1 and 3600."
  }
}

variable "min_instances" {
  description = "Instances kept warm."
  type        = number
  default     = 0
  validation {
    condition     = var.min_instances >= 0
    error_message = "min_instances cannot be negative."
  }
}

variable "max_instances" {
  description = "Upper bound on instances."
  type        = number
  default     = 10
  validation {
    condition     = var.max_instances >= 1
    error_message = "max_instances must be at least 1."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the service."
  type        = bool
  default     = true
}
