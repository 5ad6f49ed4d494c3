variable "project_id" {
  description = "The production project (one project per environment)."
  type        = string
}

variable "region" {
  type    = string
  default = "us-central1"
}

variable "firestore_location" {
  description = "A multi-region for production durability."
  type        = string
  default     = "nam5"
}

variable "image" {
  description = "First image, e.g. us-central1-docker.pkg.dev/P/ngx/ngx-agent-functions:<commit>."
  type        = string
}

variable "operator_members" {
  type    = list(string)
  default = []
}

variable "notification_channels" {
  description = "Notification channel ids every alert notifies: required in production."
  type        = list(string)
  validation {
    condition     = length(var.notification_channels) > 0
    error_message = "production alerts must notify someone: give at least one notification channel."
  }
}

variable "cors_origins" {
  description = "Browser origins of the web app (exact https origins); [] for mobile clients only. Required: an explicit choice."
  type        = list(string)
}

variable "log_retention_days" {
  description = "Days the request and model-call log lines are kept."
  type        = number
  default     = 30
}
