variable "project_id" {
  description = "The staging project (one project per environment)."
  type        = string
}

variable "region" {
  type    = string
  default = "us-central1"
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
  type    = list(string)
  default = []
}

variable "cors_origins" {
  description = "Browser origins of the web app (exact https origins); [] for mobile clients only."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Days the request and model-call log lines are kept."
  type        = number
  default     = 30
}
