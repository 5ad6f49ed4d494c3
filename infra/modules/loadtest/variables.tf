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

variable "ops_image" {
  description = "The first ops image (agentctl); Cloud Build moves the job to each release's."
  type        = string
}

variable "chat_url" {
  description = "The chat service's URL, the load's target."
  type        = string
}

variable "stream_url" {
  description = "The stream service's URL."
  type        = string
}

variable "scenario" {
  description = "The built-in scenario the job runs: normal, high or spike."
  type        = string
  default     = "normal"
  validation {
    condition     = contains(["normal", "high", "spike"], var.scenario)
    error_message = "scenario must be normal, high or spike."
  }
}

variable "schedule" {
  description = "When the weekly run starts (cron, UTC)."
  type        = string
  default     = "0 6 * * 1"
}

variable "timeout_s" {
  description = "The longest a run may take, in seconds."
  type        = number
  default     = 1800
  validation {
    condition     = var.timeout_s >= 60 && var.timeout_s <= 86400
    error_message = "timeout_s must be between 60 and 86400."
  }
}

variable "results_keep_days" {
  description = "Days a run's results are kept in the bucket."
  type        = number
  default     = 180
  validation {
    condition     = var.results_keep_days >= 1
    error_message = "results_keep_days must be at least 1."
  }
}

variable "scheduler_service_account" {
  description = "The identity Cloud Scheduler starts the job as."
  type        = string
}

variable "deployer_service_account" {
  description = "The identity Cloud Build starts the job as after a staging deploy."
  type        = string
}

variable "notification_channels" {
  description = "Notification channel ids the failure alert notifies."
  type        = list(string)
  default     = []
}
