package ec2fake

import "time"

// The answer shapes, element for element as the SDK's deserializers
// (service/ec2 deserializers.go, awsEc2query_deserializeDocument*) read
// them: lists are <xxxSet><item>…</item></xxxSet>, times ISO 8601.

func iso(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

type xTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type xTags struct {
	Items []xTag `xml:"item"`
}

func xTagsOf(m map[string]string) *xTags {
	t := &xTags{}
	for _, k := range sortedKeys(m) {
		t.Items = append(t.Items, xTag{k, m[k]})
	}
	return t
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

type xState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xGroupID struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

type xPlacement struct {
	Zone    string `xml:"availabilityZone"`
	Tenancy string `xml:"tenancy"`
}

type xEBS struct {
	VolumeID            string `xml:"volumeId"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xBDM struct {
	DeviceName string `xml:"deviceName"`
	EBS        xEBS   `xml:"ebs"`
}

type xENIAttachment struct {
	AttachmentID        string `xml:"attachmentId"`
	DeviceIndex         int    `xml:"deviceIndex"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
	NetworkCardIndex    int    `xml:"networkCardIndex"`
}

type xENI struct {
	ID         string         `xml:"networkInterfaceId"`
	SubnetID   string         `xml:"subnetId"`
	VpcID      string         `xml:"vpcId"`
	OwnerID    string         `xml:"ownerId"`
	Status     string         `xml:"status"`
	PrivateIP  string         `xml:"privateIpAddress"`
	Attachment xENIAttachment `xml:"attachment"`
	Groups     []xGroupID     `xml:"groupSet>item"`
}

type xInstance struct {
	InstanceID        string     `xml:"instanceId"`
	ImageID           string     `xml:"imageId"`
	State             xState     `xml:"instanceState"`
	PrivateDNSName    string     `xml:"privateDnsName"`
	DNSName           string     `xml:"dnsName"`
	AMILaunchIndex    int        `xml:"amiLaunchIndex"`
	InstanceType      string     `xml:"instanceType"`
	LaunchTime        string     `xml:"launchTime"`
	Placement         xPlacement `xml:"placement"`
	SubnetID          string     `xml:"subnetId"`
	VpcID             string     `xml:"vpcId"`
	PrivateIP         string     `xml:"privateIpAddress"`
	PublicIP          string     `xml:"ipAddress,omitempty"`
	Groups            []xGroupID `xml:"groupSet>item"`
	Architecture      string     `xml:"architecture"`
	RootDeviceType    string     `xml:"rootDeviceType"`
	RootDeviceName    string     `xml:"rootDeviceName"`
	BlockDevices      []xBDM     `xml:"blockDeviceMapping>item"`
	InstanceLifecycle string     `xml:"instanceLifecycle,omitempty"`
	SpotRequestID     string     `xml:"spotInstanceRequestId,omitempty"`
	ClientToken       string     `xml:"clientToken"`
	Tags              *xTags     `xml:"tagSet,omitempty"`
	ENIs              []xENI     `xml:"networkInterfaceSet>item"`
}

func (s *Server) xInstance(in *instance) xInstance {
	state := s.state(in)
	x := xInstance{
		InstanceID: in.id, ImageID: in.imageID, State: xState{stateCodes[state], state},
		PrivateDNSName: "ip-" + in.privateIP + "." + in.region + ".compute.internal",
		InstanceType:   in.instanceType, LaunchTime: iso(in.launch),
		Placement: xPlacement{Zone: in.zone, Tenancy: "default"},
		SubnetID:  in.subnet.id, VpcID: in.subnet.vpc, PrivateIP: in.privateIP,
		Architecture: "x86_64", RootDeviceType: "ebs", RootDeviceName: "/dev/xvda",
		ClientToken: in.clientToken,
	}
	alive := alive(state)
	if alive {
		x.PublicIP = in.publicIP
	}
	for _, g := range in.groups {
		x.Groups = append(x.Groups, xGroupID{g.id, g.name})
	}
	if in.spot {
		x.InstanceLifecycle = "spot"
		x.SpotRequestID = "sir-" + in.id[2:10]
	}
	if len(in.tags) > 0 {
		x.Tags = xTagsOf(in.tags)
	}
	if state != "terminated" {
		for _, d := range in.devices {
			x.BlockDevices = append(x.BlockDevices, xBDM{DeviceName: d.name, EBS: xEBS{VolumeID: d.vol.id, Status: "attached", AttachTime: iso(in.launch), DeleteOnTermination: d.deleteOnTermination}})
		}
		eni := xENI{ID: in.eni, SubnetID: in.subnet.id, VpcID: in.subnet.vpc, OwnerID: AccountID, Status: "in-use", PrivateIP: in.privateIP,
			Attachment: xENIAttachment{AttachmentID: "eni-attach-" + in.eni[4:], Status: "attached", AttachTime: iso(in.launch), DeleteOnTermination: true}}
		eni.Groups = x.Groups
		x.ENIs = []xENI{eni}
	}
	return x
}

type xReservation struct {
	ReservationID string      `xml:"reservationId"`
	OwnerID       string      `xml:"ownerId"`
	Groups        []xGroupID  `xml:"groupSet>item"`
	Instances     []xInstance `xml:"instancesSet>item"`
}

type xDescribeInstances struct {
	Reservations []*xReservation `xml:"reservationSet>item"`
}

type xStateChange struct {
	InstanceID string `xml:"instanceId"`
	Current    xState `xml:"currentState"`
	Previous   xState `xml:"previousState"`
}

type xTerminateInstances struct {
	Items []xStateChange `xml:"instancesSet>item"`
}

type xCreateSecurityGroup struct {
	GroupID string `xml:"groupId"`
	Tags    *xTags `xml:"tagSet,omitempty"`
}

type xGroupRule struct {
	ID          string `xml:"securityGroupRuleId"`
	GroupID     string `xml:"groupId"`
	OwnerID     string `xml:"groupOwnerId"`
	Egress      bool   `xml:"isEgress"`
	Protocol    string `xml:"ipProtocol"`
	From        int    `xml:"fromPort"`
	To          int    `xml:"toPort"`
	CIDR        string `xml:"cidrIpv4"`
	Description string `xml:"description,omitempty"`
}

type xAuthorizeIngress struct {
	Return bool         `xml:"return"`
	Rules  []xGroupRule `xml:"securityGroupRuleSet>item"`
}

type xRange struct {
	CIDR        string `xml:"cidrIp"`
	Description string `xml:"description,omitempty"`
}

type xPermission struct {
	Protocol string   `xml:"ipProtocol"`
	From     *int     `xml:"fromPort,omitempty"`
	To       *int     `xml:"toPort,omitempty"`
	Ranges   []xRange `xml:"ipRanges>item"`
}

type xSecurityGroup struct {
	OwnerID     string        `xml:"ownerId"`
	GroupID     string        `xml:"groupId"`
	GroupName   string        `xml:"groupName"`
	Description string        `xml:"groupDescription"`
	VpcID       string        `xml:"vpcId"`
	Ingress     []xPermission `xml:"ipPermissions>item"`
	Egress      []xPermission `xml:"ipPermissionsEgress>item"`
	Tags        *xTags        `xml:"tagSet,omitempty"`
}

type xDescribeSecurityGroups struct {
	Groups []xSecurityGroup `xml:"securityGroupInfo>item"`
}

type xDeleteSecurityGroup struct {
	Return  bool   `xml:"return"`
	GroupID string `xml:"groupId"`
}

type xSnapshot struct {
	ID           string `xml:"snapshotId"`
	VolumeID     string `xml:"volumeId"`
	State        string `xml:"status"`
	StateMessage string `xml:"statusMessage,omitempty"`
	StartTime    string `xml:"startTime"`
	Progress     string `xml:"progress"`
	OwnerID      string `xml:"ownerId"`
	Description  string `xml:"description,omitempty"`
	Size         int    `xml:"volumeSize"`
	Encrypted    bool   `xml:"encrypted"`
	StorageTier  string `xml:"storageTier"`
	Tags         *xTags `xml:"tagSet,omitempty"`
}

// xCreateSnapshot is CreateSnapshot's answer: the snapshot's fields
// directly under <CreateSnapshotResponse>.
type xCreateSnapshot xSnapshot

type xDescribeSnapshots struct {
	Snapshots []xSnapshot `xml:"snapshotSet>item"`
}

type xSubnet struct {
	ID           string `xml:"subnetId"`
	State        string `xml:"state"`
	VpcID        string `xml:"vpcId"`
	CIDR         string `xml:"cidrBlock"`
	Available    int    `xml:"availableIpAddressCount"`
	Zone         string `xml:"availabilityZone"`
	DefaultForAz bool   `xml:"defaultForAz"`
	MapPublicIP  bool   `xml:"mapPublicIpOnLaunch"`
	OwnerID      string `xml:"ownerId"`
}

type xDescribeSubnets struct {
	Subnets []xSubnet `xml:"subnetSet>item"`
}

type xAttachment struct {
	VolumeID            string `xml:"volumeId"`
	InstanceID          string `xml:"instanceId"`
	Device              string `xml:"device"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xVolume struct {
	ID          string        `xml:"volumeId"`
	Size        int           `xml:"size"`
	SnapshotID  string        `xml:"snapshotId"`
	Zone        string        `xml:"availabilityZone"`
	Status      string        `xml:"status"`
	CreateTime  string        `xml:"createTime"`
	Attachments []xAttachment `xml:"attachmentSet>item"`
	VolumeType  string        `xml:"volumeType"`
	InitRate    int           `xml:"volumeInitializationRate,omitempty"`
	Encrypted   bool          `xml:"encrypted"`
	Tags        *xTags        `xml:"tagSet,omitempty"`
}

type xDescribeVolumes struct {
	Volumes []xVolume `xml:"volumeSet>item"`
}

type xReturn struct {
	Return bool `xml:"return"`
}
