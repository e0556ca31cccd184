"""What a user launches: config, CLI, Ray Tune runner, Optuna bridge, results export."""

from study.ray_env import configure_ray_env

configure_ray_env()  # before anything imports ray, in the driver and in every worker
