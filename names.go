// Names of NATS subjects, Kafka topics and consumer groups. Only these
// functions build them, and only from validated room names.

package natter

// Subject prefixes and fixed subjects on a region's NATS.
const (
	// SubjectDurable is where gateways send messages for the bridge to
	// write to Kafka (request/reply, queue group QueueBridge).
	SubjectDurable = "natter.durable"
	// QueueBridge is the NATS queue group the bridges of a region share.
	QueueBridge = "natter-bridge"
	// DefaultTopic is the Kafka topic holding every message.
	DefaultTopic = "natter.messages"
	// DefaultPersisterGroup is the Kafka consumer group of the persister.
	DefaultPersisterGroup = "natter-persister"
	// SubjectGateways carries the gateways' heartbeats within a region,
	// so each knows the others.
	SubjectGateways = "natter.gateways"
	// SubjectFlush is where a gateway resuming a room asks the region's
	// other gateways for the room's messages not yet durable.
	SubjectFlush = "natter.flush"
)

// MsgSubject is the NATS subject carrying room's chat messages.
func MsgSubject(room string) string { return "natter.room." + room + ".msg" }

// EventSubject is the NATS subject carrying room's presence and typing
// events.
func EventSubject(room string) string { return "natter.room." + room + ".evt" }

// RoomWildcard matches every subject of room.
func RoomWildcard(room string) string { return "natter.room." + room + ".>" }

// Federation between regions over Redis pub/sub.
const (
	// FederationPattern matches every region's federation channel.
	FederationPattern = "natter:fed:*"
	// QueueFederation is the NATS queue group of the bridges' outbound
	// federation, so each local message is published to Redis once.
	QueueFederation = "natter-federation"
)

// FederationChannel is the Redis channel a region publishes its
// locally originated messages and events on.
func FederationChannel(region string) string { return "natter:fed:" + region }

// RepairGroup is the Kafka consumer group with which region's bridges
// repair federation gaps from topic.
func RepairGroup(region, topic string) string { return "natter-repair-" + region + "-" + topic }
