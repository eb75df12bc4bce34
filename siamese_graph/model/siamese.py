"""Siamese graph pieces: the shared-weight towers, the heads, the contrastive loss.

Pair label convention (both articles): 0 = same person, 1 = different people.

Heads (--head):
  absdiff    the second article's: |f_a - f_b| -> dense layer with no activation
             -> Dw = sqrt(sum(out^2) + epsilon).
  euclidean  the first article's: Dw = sqrt(sum((f_a - f_b)^2) + epsilon), the
             distance between the two tower outputs; per-photo embeddings are
             then usable on their own (enrollment, projector export).
The epsilon under the square root keeps the gradient finite at Dw = 0 (the
derivative of sqrt is infinite there).

Beside the contrastive loss, an optional identity loss (cosine_margin_loss):
each training photo's features classified among the training people, as
FaceNet's train_softmax.py and CosFace train face embeddings.
"""
import tensorflow as tf

from siamese_graph.errors import ArgumentError
from siamese_graph.model import layers

v1 = tf.compat.v1
HEADS = ("absdiff", "euclidean")
TOWER_SCOPE = "tower"
HEAD_SCOPE = "head"
CLASSIFIER_SCOPE = "identity_classifier"  # the identity loss's class weights (training only)


def tower(images, tower_fn, training, l2_normalize=True, reuse=None, custom_getter=None):
    """The tower under the shared scope: [B, S, S, 3] -> features [B, D].

    custom_getter (see moving_average_getter) swaps in other values for the
    tower's variables, such as their moving averages, without new variables.
    """
    with v1.variable_scope(TOWER_SCOPE, reuse=reuse, custom_getter=custom_getter):
        features = tower_fn(images, training)
    if l2_normalize:  # the margin then has a fixed scale (distances in [0, 2])
        features = tf.math.l2_normalize(features, axis=1, epsilon=1e-10)
    return features


def towers(image_a, image_b, tower_fn, training, l2_normalize=True):
    """One tower built twice under one variable_scope: one set of weights.

    Returns (features_a, features_b), each [B, D].
    """
    features_a = tower(image_a, tower_fn, training, l2_normalize)
    features_b = tower(image_b, tower_fn, training, l2_normalize, reuse=True)
    return features_a, features_b


def distance(features_a, features_b, head="absdiff", head_units=128, epsilon=1e-6,
             weight_decay=0.0, reuse=None, custom_getter=None):
    """Dw [B] for pairs of features [B, D] through the chosen head."""
    if head == "absdiff":
        with v1.variable_scope(HEAD_SCOPE, reuse=reuse, custom_getter=custom_getter):
            diff = layers.dense(tf.abs(features_a - features_b), head_units, scope="dense",
                                weight_decay=weight_decay)
    elif head == "euclidean":
        diff = features_a - features_b
    else:
        raise ArgumentError("head", head, "unknown head (choose from %s)" % ", ".join(HEADS))
    return tf.sqrt(tf.reduce_sum(tf.square(diff), axis=1) + epsilon)


def pairwise_distance(features_a, features_b, head="absdiff", head_units=128, epsilon=1e-6,
                      weight_decay=0.0, reuse=None):
    """Dw [B, B] between every row i of features_a and every row j of features_b,
    through the same head as distance() (the diagonal is distance()'s result)."""
    n = tf.shape(features_a)[0]
    dim = features_a.shape[-1]
    a = tf.reshape(tf.tile(features_a[:, tf.newaxis, :], [1, n, 1]), [-1, dim])
    b = tf.reshape(tf.tile(features_b[tf.newaxis, :, :], [n, 1, 1]), [-1, dim])
    return tf.reshape(distance(a, b, head, head_units, epsilon, weight_decay, reuse), [n, n])


def contrastive_loss_all_pairs(dw, identity_a, identity_b, margin, active=False):
    """The contrastive loss over every (a_i, b_j) pair of a batch, from Dw [B, B].

    Y_ij = 0 where identity_a[i] == identity_b[j]. Same and different pairs are
    averaged apart and weighted equally, so the loss has contrastive_loss's scale
    on a half-same batch, while each step sees B^2 - B more pairs than it was
    given (the different pairs include the batch's hardest ones) for no more
    tower passes.

    With active=True the different term is averaged over the different pairs
    still inside the margin (Dw < m) only, as batch-all triplet losses average
    over the triplets with a loss: as the easy pairs pass the margin, the hard
    ones keep their weight instead of being diluted by pairs that add nothing.
    """
    same = tf.cast(tf.equal(identity_a[:, tf.newaxis], identity_b[tf.newaxis, :]), tf.float32)
    different = 1.0 - same
    same_term = tf.reduce_sum(same * 0.5 * tf.square(dw)) / tf.maximum(tf.reduce_sum(same), 1.0)
    if active:
        different = different * tf.cast(dw < margin, tf.float32)
    different_term = (tf.reduce_sum(different * 0.5 * tf.square(tf.maximum(0.0, margin - dw)))
                      / tf.maximum(tf.reduce_sum(different), 1.0))
    return 0.5 * (same_term + different_term)


def moving_averages(decay, global_step):
    """FaceNet's and TF-Slim's --moving_average_decay: an ExponentialMovingAverage of
    the trainable weights. Its decay ramps up as min(decay, (1 + step) / (10 + step)),
    so short runs are not dominated by the initial weights."""
    return v1.train.ExponentialMovingAverage(decay, num_updates=global_step)


def model_variables():
    """The trainable variables inference uses (the towers and the head), without the
    identity loss's class weights: what the moving averages keep."""
    return [v for v in v1.trainable_variables() if not v.op.name.startswith(CLASSIFIER_SCOPE + "/")]


def moving_average_getter(ema):
    """A variable_scope custom_getter that returns each trainable variable's moving
    average (and other variables, like batch-norm statistics, as they are)."""
    def getter(getter, *args, **kwargs):  # variable_scope passes the next getter as getter=
        var = getter(*args, **kwargs)
        average = ema.average(var)
        return var if average is None else average
    return getter


def averaged_variables_to_restore(ema):
    """Saver var_list for an inference graph: each trainable variable is loaded
    from its moving average in the checkpoint, every other variable by its name."""
    return ema.variables_to_restore(moving_avg_variables=v1.trainable_variables())


def contrastive_loss(dw, labels, margin):
    """Mean of (1 - Y) * Dw^2 / 2 + Y * max(0, m - Dw)^2 / 2, with Y = 1 for different people."""
    y = tf.cast(labels, tf.float32)
    same = (1.0 - y) * 0.5 * tf.square(dw)
    different = y * 0.5 * tf.square(tf.maximum(0.0, margin - dw))
    return tf.reduce_mean(same + different)


def cosine_margin_loss(features, classes, num_classes, scale, margin):
    """CosFace's large-margin cosine loss (Wang et al., 2018) over training people.

    Each row's features and every class's weight vector are L2-normalized; the
    logits are scale * cos(theta_j), with margin taken off the true class's
    cosine before the softmax, so a photo is only classified right once its
    features are nearer its own person's direction than any other by the margin.
    The class weights (CLASSIFIER_SCOPE/weights [D, num_classes]) exist for
    training only: inference graphs never build them.

    Args:
      features: [B, D] float, the tower's features.
      classes: [B] int, each row's class in [0, num_classes), or -1 for none
        (left out of the mean).
      num_classes: int, the number of training people.
      scale: float s > 0; margin: float m in [0, 1).
    Returns:
      A scalar: the cross-entropy averaged over the rows with a class.
    """
    with v1.variable_scope(CLASSIFIER_SCOPE):
        weights = v1.get_variable("weights", [features.shape[-1], num_classes], tf.float32,
                                  initializer=v1.glorot_uniform_initializer())
    cosine = tf.matmul(tf.math.l2_normalize(tf.cast(features, tf.float32), 1, epsilon=1e-10),
                       tf.math.l2_normalize(weights, 0, epsilon=1e-10))
    classes = tf.cast(classes, tf.int32)
    known = tf.cast(classes >= 0, tf.float32)
    target = tf.maximum(classes, 0)
    logits = scale * (cosine - margin * tf.one_hot(target, num_classes))
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits)
    return tf.reduce_sum(xent * known) / tf.maximum(tf.reduce_sum(known), 1.0)


def distillation_loss(features, teacher, known):
    """Knowledge distillation on the features' direction: the mean of
    1 - cos(features_i, teacher_i) over the rows the teacher knows.

    Args:
      features: [B, D] float, the student tower's features.
      teacher: [B, D] float, the teacher's features of the same photos (as
        training/teacher.py computes them: its own crop, unaugmented).
      known: [B] bool, the rows with a teacher row (the others are left out).
    Returns:
      A scalar in [0, 2].
    """
    cosine = tf.reduce_sum(tf.math.l2_normalize(tf.cast(features, tf.float32), 1, epsilon=1e-10) *
                           tf.math.l2_normalize(teacher, 1, epsilon=1e-10), axis=1)
    known = tf.cast(known, tf.float32)
    return tf.reduce_sum((1.0 - cosine) * known) / tf.maximum(tf.reduce_sum(known), 1.0)
