"""Defenses: pre-processors that map (possibly adversarial) images in [0,1] to restored images in [0,1].

`arnkit.defenses.arn` holds the paper's adversarial noise removing network (ARN).
"""
