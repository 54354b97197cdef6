"""Two more perturbations for `flr audit --perturbations-file examples/perturbations.py`: each is a pure function
(prompt, response) -> response, registered by name. The built-in ones are in src/flr/perturbations.py."""

from flr.perturbations import perturbation


@perturbation("disclaimer", kind="content-free")
def disclaimer(prompt, response):
    """prepends "As an AI language model, ..." """
    return "As an AI language model, I will do my best to answer. " + response


@perturbation("agree", kind="content-free")
def agree(prompt, response):
    """prepends sycophantic agreement"""
    return "You're absolutely right to ask, and I completely agree with you. " + response
