"""RL training: one TRL GRPOTrainer, configured by recipes (grpo / dapo / gspo), with the composite reward."""
