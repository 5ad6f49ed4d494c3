variable "project_id" { type = string }
variable "region" { type = string }
variable "environment" { type = string }

variable "name" {
  description = "The function: chat, stream, cache_maintenance or backup."
  type        = string
}

variable "image" { type = string }
variable "network" { type = string }
variable "subnetwork" { type = string }

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
  type    = map(string)
  default = {}
}

variable "secret_env" {
  description = "Environment variable name to Secret Manager secret id."
  type        = map(string)
  default     = {}
}

variable "cpu" {
  type    = string
  default = "1"
}

variable "memory" {
  type    = string
  default = "512Mi"
}

variable "concurrency" {
  type    = number
  default = 80
}

variable "timeout_s" {
  type    = number
  default = 300
}

variable "min_instances" {
  type    = number
  default = 0
}

variable "max_instances" {
  type    = number
  default = 10
}

variable "deletion_protection" {
  type    = bool
  default = true
}
