"""Classic bugs of the shared code (training loop, loaders, test helpers), each caught by a
test: python -m utils.bugzoo utils"""

from utils.bugzoo import Bug

BUGS = [
    Bug(
        name="DistributedSampler never told the epoch",
        file="training_utils.py",
        find="            sampler.set_epoch(epoch)  # a new shuffle every epoch",
        replace="            pass  # a new shuffle every epoch",
        caught_by="tests/test_training_utils.py::test_fit_calls_set_epoch_on_a_distributed_sampler",
        symptom="under torchrun every epoch repeats epoch 0's order",
    ),
    Bug(
        name="evaluation left in training mode",
        file="training_utils.py",
        find="    was_training = net.training\n    net.eval()\n",
        replace="    was_training = net.training\n",
        caught_by="tests/test_training_utils.py::test_evaluate_with_dropout_is_deterministic_and_restores_the_mode",
        symptom="validation loss changes from call to call (dropout on, batch-norm stats updated)",
    ),
    Bug(
        name="the loader never shuffles",
        file="data_loaders.py",
        find="        shuffle=shuffle,\n        drop_last=drop_last,",
        replace="        shuffle=False,\n        drop_last=drop_last,",
        caught_by="tests/test_data_loaders.py::test_make_loader_is_reproducible_and_complete",
        symptom="every epoch sees the same batches in the same order",
    ),
    Bug(
        name="checkpoints unpickled with weights_only=False",
        file="training_utils.py",
        find="checkpoint = torch.load(path, map_location=map_location, weights_only=True)",
        replace="checkpoint = torch.load(path, map_location=map_location, weights_only=False)",
        caught_by="tests/test_training_utils.py::test_load_checkpoint_refuses_a_pickled_object",
        symptom="loading a checkpoint from elsewhere can run any code in it",
    ),
    Bug(
        name="float32 tolerance relative to each element only",
        file="testing.py",
        find="        return tol.rtol * (np.abs(e) + scale)",
        replace="        return tol.rtol * np.abs(e)",
        caught_by="tests/test_testing.py::test_float32_tolerance_is_relative_to_the_scale_of_the_tensor",
        symptom="a gradient element near zero fails on one CPU's summation order and not another's",
    ),
    Bug(
        name="assert_close points at the largest difference, not the worst violation",
        file="testing.py",
        find="    excess = np.where(bad, excess, -np.inf)\n",
        replace="    excess = np.where(True, diff, -np.inf)\n",
        caught_by="tests/test_testing.py::test_assert_close_names_the_element_that_violates_the_tolerance_most",
        symptom="the failure message names an element that passes",
    ),
    Bug(
        name="gradient clipping per tensor instead of the global norm",
        file="training_utils.py",
        find="torch.nn.utils.clip_grad_norm_(",
        replace="torch.nn.utils.clip_grad_value_(",
        caught_by="tests/test_training_utils.py::test_clip_grad_norm_makes_step_equal_lr_times_clipped_gradient",
        symptom="the update changes direction: each tensor is clipped alone",
    ),
    Bug(
        name="a learner's exercise file checked for its functions only",
        file="testing.py",
        find="    level = exercise_level(exercises_dir, name)\n",
        replace="    level = None\n",
        caught_by="tests/test_testing.py::test_a_learners_exercise_file_is_held_to_its_reference_solutions_level",
        symptom="a NumPy exercise solved with torch passes the learner's own check",
    ),
    Bug(
        name="L2 purity check blind to the aten kernels",
        file="testing.py",
        find='    "convolution", "_convolution",',
        replace='    "_convolution",',
        caught_by="tests/test_testing.py::test_l2_forbids_the_aten_kernels_private_entry_points_and_getattr_lookups",
        symptom="torch.convolution passes for a hand-written L2 convolution",
    ),
]
